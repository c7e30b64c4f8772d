#include "half_weights.hpp"

#include "magellano/autograd/tape.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops::detail {

Tensor widen(const Tensor& w) {
  if (w.dtype() == DType::f32) return w;
  if (w.dtype() != DType::f16)
    throw Error(std::string("weights must be f32 or f16, got ") + to_string(w.dtype()) + ".");
  Tensor w32 = Tensor::empty(w.ctx(), w.shape(), DType::f32, MemCategory::scratch);
  cast_into(w, w32);
  return w32;
}

void add_weight_grad(const std::shared_ptr<AutogradMeta>& m,
                     const std::function<void(const Tensor& dst, float beta)>& product) {
  if (!m) return;
  if (m->grad_dtype == DType::f32) {
    auto g = autograd::grad_target(m);
    product(g.tensor, g.accumulate ? 1.0f : 0.0f);
    return;
  }
  Tensor g32 = Tensor::empty(*m->ctx, m->shape, DType::f32, MemCategory::scratch);
  product(g32, 0.0f);
  accumulate_grad(m, g32);
}

}  // namespace magellano::ops::detail
