#include "magellano/optim/pack.hpp"

#include <algorithm>
#include <set>

#include "magellano/autograd/tape.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::optim {
namespace {

constexpr uint64_t kDefaultChunkBytes = 256ull << 20;

int64_t align_up(int64_t n, int64_t a) { return (n + a - 1) / a * a; }

// A (shape) view of flat at element offset.
Tensor view_at(const Tensor& flat, int64_t offset, const Shape& shape) {
  return flat.narrow_rows(offset, offset + shape.numel()).view(shape);
}

}  // namespace

ParameterPack::ParameterPack(Context& ctx, const std::vector<Parameter>& params,
                             uint64_t max_chunk_bytes)
    : ctx_(&ctx) {
  const uint64_t max_alloc = ctx.device().max_alloc_bytes;
  if (max_chunk_bytes == 0) max_chunk_bytes = std::min<uint64_t>(max_alloc, kDefaultChunkBytes);

  // Trainable parameters, each tensor once: f32 then f16; in each, decay group first.
  std::vector<Parameter> order;
  std::set<const AutogradMeta*> seen;
  for (DType dtype : {DType::f32, DType::f16})
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& p : params) {
        if (!p.tensor.defined() || !p.tensor.requires_grad()) continue;
        const DType t = p.tensor.dtype();
        if (t != DType::f32 && t != DType::f16)
          throw Error("AdamW: parameter '" + p.name + "' is " + to_string(t) +
                      "; parameters are stored as f32 or f16.");
        if (t != dtype || p.weight_decay != (pass == 0)) continue;
        if (!seen.insert(p.tensor.meta().get()).second) continue;
        if (&p.tensor.ctx() != &ctx)
          throw Error("AdamW: parameter '" + p.name + "' lives on another device context.");
        order.push_back(p);
      }

  // Greedy placement into chunks; a new chunk where the dtype changes.
  struct Plan { int64_t numel = 0; DType dtype = DType::f32; };
  std::vector<Plan> plans;
  for (const auto& p : order) {
    const DType dtype = p.tensor.dtype();
    const uint64_t es = dtype_size(dtype);
    const int64_t limit = std::max<int64_t>(kAlign, static_cast<int64_t>(max_chunk_bytes / es) / kAlign * kAlign);
    const int64_t n = align_up(std::max<int64_t>(p.tensor.numel(), 1), kAlign);
    if (plans.empty() || plans.back().dtype != dtype || plans.back().numel + n > limit) {
      if (static_cast<uint64_t>(n) * es > max_alloc)
        throw Error("AdamW: parameter '" + p.name + "' (" + std::to_string(p.tensor.nbytes()) +
                    " bytes) exceeds the device's largest allocation (" +
                    std::to_string(max_alloc) + " bytes).");
      plans.push_back({0, dtype});
    }
    Plan& c = plans.back();
    params_.push_back({p, static_cast<int>(plans.size() - 1), c.numel});
    c.numel += n;
  }

  for (const auto& plan : plans) {
    PackChunk c;
    c.numel = plan.numel;
    c.params = Tensor::zeros(ctx, Shape{plan.numel}, plan.dtype, MemCategory::parameters);
    c.grads = Tensor::zeros(ctx, Shape{plan.numel}, plan.dtype, MemCategory::gradients);
    chunks_.push_back(std::move(c));
  }
  // decay_end: where the chunk's last decay tensor ends (decay tensors come first).
  for (const auto& pp : params_)
    if (pp.param.weight_decay)
      chunks_[pp.chunk].decay_end = pp.offset + pp.param.tensor.numel();

  for (auto& pp : params_) {
    const PackChunk& c = chunks_[pp.chunk];
    Tensor& t = pp.param.tensor;
    t.rebind(c.params.storage(), c.params.offset() + pp.offset);
    const auto& m = t.meta();
    Tensor g = view_at(c.grads, pp.offset, t.shape());
    if (m->grad_valid && m->grad.defined() && m->grad.dtype() == c.dtype() &&
        m->grad.numel() == t.numel())
      ops::copy_into(m->grad, g);  // keep a gradient collected before packing
    m->grad = g;
  }
}

int64_t ParameterPack::numel() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.param.tensor.numel();
  return n;
}

void ParameterPack::zero_grad() {
  for (const auto& c : chunks_) ops::fill(c.grads, 0.0f);
  for (const auto& p : params_) p.param.tensor.meta()->grad_valid = true;
}

void ParameterPack::scale_grads(float s) {
  for (const auto& c : chunks_) {
    if (c.dtype() == DType::f32) ops::scale_into(c.grads, s, c.grads, false);
    else ops::Launch(*ctx_, "adamw", "scale_half").arg(c.grads).arg(c.numel).arg(s).run(c.numel);
  }
}

}  // namespace magellano::optim
