#include "magellano/optim/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::optim {
namespace {

constexpr int64_t kLocal = 256;      // LOCAL in cl/adamw.cl
constexpr int64_t kMaxGroups = 256;  // partial sums per chunk
const char* kStepOptions = "-cl-fp32-correctly-rounded-divide-sqrt";

// VEC of the step kernels: 16 on CPUs (measured on PoCL: ~3x one element per work-item), 4
// elsewhere (16-byte loads per work-item, the usual best for GPU bandwidth). Divides kAlign,
// so every chunk holds whole vectors.
int64_t step_vec(const Context& ctx) { return ctx.device().type == "cpu" ? 16 : 4; }
static_assert(ParameterPack::kAlign % 16 == 0, "chunks must hold whole vectors");

// Build options of cl/adamw.cl. -w on CPUs: clang warns (on stderr, at every build) that
// float16 arguments change the ABI without AVX-512; harmless here, everything is inlined.
BuildOptions program_options(const Context& ctx) {
  const int64_t vec = step_vec(ctx);
  BuildOptions options = BuildOptions().define("VEC", vec).flag(kStepOptions);
  if (vec == 16) options.flag("-w");
  return options;
}

// The random stream of chunk k at step t for stochastic rounding (splitmix64's finaliser of
// both, folded to 32 bits): a new one every step, the same one for the same step on resume.
uint32_t rounding_seed(int64_t t, size_t k) {
  uint64_t z = static_cast<uint64_t>(t) * 0x9E3779B97F4A7C15ULL + k;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<uint32_t>(z ^ (z >> 32));
}

Tensor view_at(const Tensor& flat, int64_t offset, const Shape& shape) {
  return flat.narrow_rows(offset, offset + shape.numel()).view(shape);
}

}  // namespace

AdamW::AdamW(Context& ctx, const std::vector<Parameter>& params, AdamWConfig config)
    : pack_(ctx, params, config.max_chunk_bytes), config_(config) {
  if (!(config.beta1 >= 0.0f && config.beta1 < 1.0f) || !(config.beta2 >= 0.0f && config.beta2 < 1.0f))
    throw Error("AdamW: betas must lie in [0, 1); got " + std::to_string(config.beta1) + ", " +
                std::to_string(config.beta2) + ".");
  if (!(config.eps >= 0.0f)) throw Error("AdamW: eps must be >= 0.");
  int64_t groups_total = 0;
  for (const auto& c : pack_.chunks()) {
    exp_avg_.push_back(Tensor::zeros(ctx, Shape{c.numel}, DType::f32, MemCategory::optimizer));
    exp_avg_sq_.push_back(Tensor::zeros(ctx, Shape{c.numel}, DType::f32, MemCategory::optimizer));
    const int64_t g = std::clamp<int64_t>((c.numel + kLocal - 1) / kLocal, 1, kMaxGroups);
    partial_base_.push_back(groups_total);
    partial_groups_.push_back(g);
    groups_total += g;
  }
  partial_ = Tensor::zeros(ctx, Shape{std::max<int64_t>(groups_total, 1)}, DType::f32,
                           MemCategory::optimizer);
  stats_ = Tensor::zeros(ctx, Shape{2}, DType::f32, MemCategory::optimizer);
}

void AdamW::norm_into(const Tensor& out, float max_norm, float grad_scale) {
  Context& ctx = pack_.ctx();
  const auto& chunks = pack_.chunks();
  for (size_t k = 0; k < chunks.size(); ++k) {
    Tensor part = partial_.narrow_rows(partial_base_[k], partial_base_[k] + partial_groups_[k]);
    const bool half = chunks[k].dtype() == DType::f16;
    if (chunks[k].numel % step_vec(ctx) != 0) throw Error("AdamW: a chunk is not vector aligned.");
    ops::Launch(ctx, "adamw", half ? "sumsq_partial_half" : "sumsq_partial", program_options(ctx))
        .arg(chunks[k].grads).arg(part)
        .arg(chunks[k].numel).run(partial_groups_[k] * kLocal, kLocal);
  }
  const int64_t count = chunks.empty() ? 0 : partial_.numel();
  ops::Launch(ctx, "adamw", "norm_final", program_options(ctx))
      .arg(partial_).arg(out).arg(count).arg(max_norm).arg(grad_scale).run(kLocal, kLocal);
}

Tensor AdamW::grad_norm(float grad_scale) {
  Tensor out = Tensor::empty(pack_.ctx(), Shape{1});
  norm_into(out, 0.0f, grad_scale);
  return out;
}

Tensor AdamW::last_grad_norm() const { return clipped_ ? stats_.narrow_rows(0, 1) : Tensor(); }

void AdamW::step(float lr, float max_grad_norm, float grad_scale) {
  Context& ctx = pack_.ctx();
  const bool clip = max_grad_norm > 0.0f;
  if (clip) {
    norm_into(stats_, max_grad_norm, grad_scale);
    clipped_ = true;
  }
  ++step_;
  const double t = static_cast<double>(step_);
  const double b1 = config_.beta1, b2 = config_.beta2;
  const float decay = static_cast<float>(1.0 - double(lr) * double(config_.weight_decay));
  const float omb1 = static_cast<float>(1.0 - b1), omb2 = static_cast<float>(1.0 - b2);
  const float step_size = static_cast<float>(double(lr) / (1.0 - std::pow(b1, t)));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
  const auto& chunks = pack_.chunks();
  const int64_t vec = step_vec(ctx);
  const BuildOptions options = program_options(ctx);
  for (size_t k = 0; k < chunks.size(); ++k) {
    const PackChunk& c = chunks[k];
    // Chunks are whole buffers of kAlign multiples (offset 0), moments likewise; decay_end is
    // rounded up to VEC, which only moves padding (zeros, unchanged by decay) into the decay
    // group.
    for (const Tensor& t : {c.params, c.grads, exp_avg_[k], exp_avg_sq_[k]})
      if (t.offset() % vec != 0 || c.numel % vec != 0) throw Error("AdamW: a chunk is not vector aligned.");
    const int64_t decay_end = std::min(c.numel, (c.decay_end + vec - 1) / vec * vec);
    const bool half = c.dtype() == DType::f16;
    ops::Launch launch(ctx, "adamw", half ? "adamw_step_half" : "adamw_step", options);
    launch.arg(c.params).arg(c.grads).arg(exp_avg_[k]).arg(exp_avg_sq_[k]).arg(stats_)
        .arg(c.numel).arg(decay_end).arg(decay).arg(config_.beta1).arg(omb1)
        .arg(config_.beta2).arg(omb2).arg(step_size).arg(bc2_sqrt).arg(config_.eps)
        .arg(clip).arg(grad_scale);
    if (half) launch.arg(config_.stochastic_rounding).arg(rounding_seed(step_, k));
    launch.run(c.numel / vec);
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& pp : pack_.params()) {
    const Shape& s = pp.param.tensor.shape();
    out.emplace_back(pp.param.name + ".exp_avg", view_at(exp_avg_[pp.chunk], pp.offset, s));
    out.emplace_back(pp.param.name + ".exp_avg_sq", view_at(exp_avg_sq_[pp.chunk], pp.offset, s));
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  for (const auto& [name, dst] : state_tensors()) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw Error("AdamW::load_state: the optimizer state has no tensor '" + name + "'.");
    const Tensor& src = it->second;
    if (src.dtype() != DType::f32 || src.numel() != dst.numel())
      throw Error("AdamW::load_state: '" + name + "' is " + to_string(src.dtype()) + " " +
                  src.shape().str() + "; expected f32 " + dst.shape().str() + ".");
    ops::copy_into(src, dst);
  }
}

}  // namespace magellano::optim
