#include "magellano/generate/infill.hpp"

#include <algorithm>

#include "magellano/autograd/tape.hpp"
#include "magellano/ops/index.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::generate {
namespace {

// One blank of a model with GLM's 2D positions (attention rope_2d): prompt = A ++ the spans so far
// ++ [START], prompt_ids their 2D ids ((t, 0) over A; (the blank's [MASK] index, 1 ..) over each
// span). Each token is the sample of a full forward's last logits (prefix |A|), appended with the
// ids (mask_at, next block): the KV-cache decoder gives every step the ids (t, 0), so it cannot be
// used. O(L²) per blank, which a command-line fill of a few blanks affords.
Completion decode_blank_2d(const nn::Model& model, const std::vector<int32_t>& prompt,
                           const std::vector<int32_t>& prompt_ids, int32_t prefix, int32_t mask_at,
                           const GenerationConfig& gc) {
  autograd::NoGradScope no_grad;
  Context& ctx = model.parameters().front().tensor.ctx();
  const int64_t V = model.spec().vocab_size;
  std::vector<int32_t> seq = prompt, ids = prompt_ids;
  Sampler sampler(ctx, 1, V, gc.sampling, {seq});
  Completion c;
  c.prompt_ids = seq;
  const Tensor p = Tensor::from_host_i32(ctx, Shape{1}, {prefix});
  for (int64_t step = 0; step < gc.max_new_tokens; ++step) {
    const auto L = static_cast<int64_t>(seq.size());
    const Tensor logits = model.forward(Tensor::from_host_i32(ctx, Shape{1, L}, seq), nullptr, 0, p,
                                        Tensor::from_host_i32(ctx, Shape{1, L, 2}, ids)).logits;
    const Tensor last = ops::gather_rows(logits.view(Shape{L, V}), Tensor::from_host_i32(ctx, Shape{1}, {int32_t(L - 1)}));
    const int32_t id = sampler.sample(last, step).to_host_i32()[0];
    c.ids.push_back(id);
    if (std::find(gc.eos_ids.begin(), gc.eos_ids.end(), id) != gc.eos_ids.end()) {
      c.finish = FinishReason::eos;
      break;
    }
    ids.insert(ids.end(), {mask_at, ids.back() + 1});
    seq.push_back(id);
  }
  return c;
}

}  // namespace

Infill fill_blanks(const nn::Model& model, const std::vector<int32_t>& part_a, data::InfillTokens tokens,
                   const GenerationConfig& config, const TokenBytes& token_bytes) {
  const auto blanks = std::count(part_a.begin(), part_a.end(), tokens.mask);
  if (blanks == 0)
    throw Error("infill: the input holds no [MASK] (id " + std::to_string(tokens.mask) + "); mark each blank with [MASK].");
  GenerationConfig gc = config;
  gc.prompt_as_prefix = false;
  gc.prefix_tokens = static_cast<int64_t>(part_a.size());
  gc.stop.clear();
  // [END] closes a blank; a [START] or [MASK] (never a span token in training) ends it too.
  gc.eos_ids.insert(gc.eos_ids.end(), {tokens.end, tokens.start, tokens.mask});
  Infill out;
  out.part_a = part_a;
  std::vector<int32_t> prompt = part_a;
  // GLM 2D ids (model.infill_positions glm2d): (t, 0) over A; blank j's tokens at its [MASK]'s index.
  const bool glm2d = model.spec().attention.rope_2d;
  std::vector<int32_t> ids, mask_at;
  for (size_t t = 0; t < part_a.size(); ++t) {
    ids.insert(ids.end(), {static_cast<int32_t>(t), 0});
    if (part_a[t] == tokens.mask) mask_at.push_back(static_cast<int32_t>(t));
  }
  for (int64_t j = 0; j < blanks; ++j) {
    prompt.push_back(tokens.start);
    ids.insert(ids.end(), {mask_at[j], 1});
    Completion c = glm2d ? decode_blank_2d(model, prompt, ids, static_cast<int32_t>(part_a.size()), mask_at[j], gc)
                         : generate(model, {prompt}, gc).front();
    if (c.finish == FinishReason::eos) c.ids.pop_back();  // the id that ended the blank
    prompt.insert(prompt.end(), c.ids.begin(), c.ids.end());
    for (size_t k = 0; k < c.ids.size(); ++k) ids.insert(ids.end(), {mask_at[j], static_cast<int32_t>(k + 2)});
    out.spans.push_back(std::move(c.ids));
    out.finish.push_back(c.finish);
  }
  size_t next = 0;
  for (const int32_t id : part_a) {
    if (id != tokens.mask) out.filled.push_back(id);
    else out.filled.insert(out.filled.end(), out.spans[next].begin(), out.spans[next].end()), ++next;
  }
  if (token_bytes)
    for (const int32_t id : out.filled) out.text += token_bytes(id);
  return out;
}

}  // namespace magellano::generate
