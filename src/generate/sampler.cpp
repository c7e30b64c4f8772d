#include "magellano/generate/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::generate {

void validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    throw Error("--temperature must be a finite number >= 0 (0 = greedy), got " + std::to_string(p.temperature) + ".");
  if (p.top_k < 0) throw Error("--top-k must be >= 0 (0 = off), got " + std::to_string(p.top_k) + ".");
  if (!(p.top_p >= 0.0f && p.top_p <= 1.0f))
    throw Error("--top-p must be in [0, 1] (1 = off), got " + std::to_string(p.top_p) + ".");
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    throw Error("--repetition-penalty must be a finite number > 0 (1 = off), got " +
                std::to_string(p.repetition_penalty) + ".");
}

int64_t sample_local_size(const Context& ctx) {
  const DeviceInfo& dev = ctx.device();
  int64_t want = dev.type == "gpu" ? 512 : 128;
  if (const char* env = std::getenv("MAGELLANO_SAMPLE_LOCAL"); env && *env) {
    want = std::atoll(env);
    if (want < 1 || want > 1024 || (want & (want - 1)) != 0)
      throw Error("MAGELLANO_SAMPLE_LOCAL must be a power of two from 1 to 1024; got '" + std::string(env) + "'.");
  }
  // cl/sample.cl's local memory, sample_merge's (the most): LOCAL * 17 + 20 + 3 KEPT_MAX words.
  auto fits = [&](int64_t n) {
    return n <= static_cast<int64_t>(dev.max_work_group_size) &&
           uint64_t(n * 17 + 20 + 6 * kSampleTopKMax) * 4 <= dev.local_mem_bytes;
  };
  int64_t l = 1;
  while (l * 2 <= want && fits(l * 2)) l *= 2;
  return l;
}

bool sample_fast_applies(const SamplingParams& p, int64_t vocab) {
  if (const char* env = std::getenv("MAGELLANO_SAMPLE_FAST"); env && *env) {
    const std::string v = env;
    if (v != "0" && v != "1") throw Error("MAGELLANO_SAMPLE_FAST must be 0 (the full path) or 1; got '" + v + "'.");
    if (v == "0") return false;
  }
  return p.temperature > 0.0f && p.top_k > 0 && p.top_k <= kSampleTopKMax && p.top_k < vocab;
}

namespace {

// The fast path's segments per row: as many work-groups as the device runs at once for one row
// (compute units on GPUs; 4 a core on CPUs, so that a row's segments spread over the cores), at
// most one per work-item of sample_merge and one per id.
int64_t default_segments(const Context& ctx, int64_t vocab, int64_t local) {
  const DeviceInfo& dev = ctx.device();
  int64_t s = std::max<int64_t>(1, dev.type == "gpu" ? dev.compute_units : 4 * int64_t(dev.compute_units));
  if (const char* env = std::getenv("MAGELLANO_SAMPLE_SEGMENTS"); env && *env) {
    s = std::atoll(env);
    if (s < 1) throw Error("MAGELLANO_SAMPLE_SEGMENTS must be a positive number; got '" + std::string(env) + "'.");
  }
  return std::min({s, local, vocab});
}

}  // namespace

Sampler::Sampler(Context& ctx, int64_t batch, int64_t vocab, const SamplingParams& params,
                 const std::vector<std::vector<int32_t>>& context, const SampleFastShape& shape)
    : ctx_(ctx), batch_(batch), vocab_(vocab), params_(params), local_(sample_local_size(ctx)),
      seg_local_(std::min<int64_t>(local_, 128)) {
  validate(params);
  if (batch < 1 || vocab < 1) throw Error("sampler: batch and vocabulary must be positive.");
  if (vocab >= (int64_t{1} << 24))
    throw Error("sampler: vocabularies of 2^24 ids or more are not supported (counts are f32).");
  if (!context.empty() && static_cast<int64_t>(context.size()) != batch)
    throw Error("sampler: give one context list per row (" + std::to_string(batch) + "), got " +
                std::to_string(context.size()) + ".");
  std::vector<uint8_t> seen(static_cast<size_t>(batch * vocab), 0);
  for (size_t b = 0; b < context.size(); ++b)
    for (int32_t id : context[b])
      if (id >= 0 && id < vocab) seen[b * vocab + id] = 1;
  seen_ = Tensor::from_host_u8(ctx, Shape{batch, vocab}, seen, MemCategory::scratch);
  z_ = Tensor::empty(ctx, Shape{batch, vocab}, DType::f32, MemCategory::scratch);
  e_ = Tensor::empty(ctx, Shape{batch, vocab}, DType::f32, MemCategory::scratch);
  options_ = BuildOptions().define("LOCAL", local_).define("SEG_LOCAL", seg_local_).define("TOPK_MAX", kSampleTopKMax);
  if (sample_fast_applies(params, vocab)) {
    if (shape.segments < 0 || shape.segment_keep < 0)
      throw Error("sampler: the fast path's segments and segment_keep must be >= 0 (0 = default).");
    segments_ = shape.segments > 0 ? std::min({shape.segments, local_, vocab}) : default_segments(ctx, vocab, local_);
    segment_keep_ = shape.segment_keep > 0 ? shape.segment_keep : params.top_k;
    cand_id_ = Tensor::empty(ctx, Shape{batch, segments_, 2 * kSampleTopKMax}, DType::i32, MemCategory::scratch);
    cand_key_ = Tensor::empty(ctx, Shape{batch, segments_, 2 * kSampleTopKMax}, DType::i32, MemCategory::scratch);
    counts_ = Tensor::empty(ctx, Shape{batch, segments_}, DType::i32, MemCategory::scratch);
    unfinished_ = Tensor::empty(ctx, Shape{batch}, DType::i32, MemCategory::scratch);
  }
}

Tensor Sampler::run(const Tensor& logits, int64_t step, const Tensor* probs) {
  if (logits.dtype() != DType::f32 || logits.shape() != Shape{batch_, vocab_})
    throw Error("sampler: logits must be " + Shape{batch_, vocab_}.str() + " f32, got " +
                logits.shape().str() + " " + to_string(logits.dtype()) + ".");
  Tensor ids = Tensor::empty(ctx_, Shape{batch_}, DType::i32, MemCategory::scratch);
  // Without probabilities the kernel still needs an f32 buffer argument; it writes nothing there.
  const Tensor& p = probs ? *probs : z_;
  // sample_rows: every row, or (fast path) the rows sample_merge left unfinished (massive ties).
  auto full_rows = [&](const Tensor& unfinished, bool only_unfinished) {
    ops::Launch(ctx_, "sample", "sample_rows", options_)
        .arg(logits).arg(seen_).arg(z_).arg(e_).arg(ids).arg(p).arg(unfinished).arg(only_unfinished)
        .arg(vocab_).arg(params_.temperature).arg(params_.top_k).arg(params_.top_p)
        .arg(params_.repetition_penalty).arg(static_cast<int64_t>(params_.seed)).arg(step)
        .arg(probs != nullptr)
        .run(static_cast<size_t>(batch_ * local_), static_cast<size_t>(local_));
  };
  if (!fast()) {
    full_rows(ids, false);  // (ids: any i32 buffer; not read)
    return ids;
  }
  ops::Launch(ctx_, "sample", "sample_segments", options_)
      .arg(logits).arg(seen_).arg(z_).arg(cand_id_).arg(cand_key_).arg(counts_).arg(vocab_).arg(segments_)
      .arg(params_.temperature).arg(segment_keep_).arg(params_.repetition_penalty)
      .run(static_cast<size_t>(batch_ * segments_ * seg_local_), static_cast<size_t>(seg_local_));
  ops::Launch(ctx_, "sample", "sample_merge", options_)
      .arg(logits).arg(seen_).arg(z_).arg(e_).arg(ids).arg(p).arg(cand_id_).arg(cand_key_).arg(counts_)
      .arg(unfinished_).arg(vocab_).arg(segments_).arg(params_.temperature).arg(params_.top_k).arg(params_.top_p)
      .arg(params_.repetition_penalty).arg(static_cast<int64_t>(params_.seed)).arg(step).arg(probs != nullptr)
      .run(static_cast<size_t>(batch_ * local_), static_cast<size_t>(local_));
  full_rows(unfinished_, true);
  return ids;
}

Tensor Sampler::sample(const Tensor& logits, int64_t step) {
  Tensor ids = run(logits, step, nullptr);
  if (params_.repetition_penalty != 1.0f)
    ops::Launch(ctx_, "sample", "sample_mark", options_).arg(seen_).arg(ids).arg(batch_).arg(vocab_)
        .run(static_cast<size_t>(batch_), 64);
  return ids;
}

Tensor Sampler::probabilities(const Tensor& logits, int64_t step, Tensor* ids) {
  Tensor probs = Tensor::empty(ctx_, Shape{batch_, vocab_});
  Tensor drawn = run(logits, step, &probs);
  if (ids) *ids = drawn;
  return probs;
}

}  // namespace magellano::generate
