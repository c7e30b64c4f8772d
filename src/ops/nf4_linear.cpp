// nf4_linear: dequantize W into the per-context scratch, then CLBlast SGEMM (forward x·Wᵀ,
// backward dy·W). Nothing of W's size outlives the call but the scratch.
#include "magellano/ops/nf4_linear.hpp"

#include <algorithm>
#include <map>
#include <mutex>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/matmul.hpp"

namespace magellano::ops {

namespace {

struct ScratchRegistry {
  std::mutex mutex;
  std::map<const Context*, Tensor> buffers;  // flat f32, tracked as scratch
};

ScratchRegistry& registry() {
  static auto* r = new ScratchRegistry;  // never destroyed: contexts may outlive statics
  return *r;
}

}  // namespace

Tensor nf4_scratch(Context& ctx, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  Tensor& buf = r.buffers[&ctx];
  if (!buf.defined() || buf.numel() < n) {
    buf = Tensor();  // release the smaller one first (queued kernels keep it alive as needed)
    buf = Tensor::empty(ctx, Shape{n}, DType::f32, MemCategory::scratch);
  }
  return buf.narrow_rows(0, n).view(Shape{rows, cols});
}

uint64_t nf4_scratch_bytes(Context& ctx) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.buffers.find(&ctx);
  return it == r.buffers.end() || !it->second.defined() ? 0 : it->second.nbytes();
}

void release_nf4_scratch(Context& ctx) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.buffers.erase(&ctx);
}

namespace {

// y (rows, out) = x (rows, in) · dequant(W)ᵀ in one kernel; rows <= kNF4FusedMaxRows.
void fused_forward(const Tensor& x, const NF4Weight& w, const Tensor& y, int64_t rows) {
  const int64_t in = w.in_features(), out = w.out_features();
  const int64_t lanes = std::min<int64_t>(32, pow2_local_size(x.ctx()));
  Launch(x.ctx(), "nf4", "nf4_linear_small", BuildOptions().define("NF4_M", rows))
      .arg(x).arg(w.packed).arg(w.absmax_q).arg(w.nested_absmax).arg(w.nested_quant_map)
      .arg(w.quant_map).arg(y).arg(out).arg(in).arg(w.offset).local_floats(lanes)
      .run(static_cast<size_t>(out * lanes), static_cast<size_t>(lanes));
}

}  // namespace

Tensor nf4_linear(const Tensor& x, const NF4Weight& w, NF4Path path) {
  detail::require_f32(x, "nf4_linear", "x");
  if (!w.defined() || w.shape.ndim() != 2)
    throw Error("nf4_linear: the NF4 weight must be 2-D (out, in), got " +
                (w.defined() ? w.shape.str() : std::string("an undefined weight")) + ".");
  const int64_t in = w.in_features(), out = w.out_features();
  if (x.shape().ndim() < 1 || x.shape().last() != in)
    throw Error("nf4_linear: x " + x.shape().str() + " must end in the weight's input size " +
                std::to_string(in) + " (weight " + w.shape.str() + ").");
  if (&x.ctx() != &w.ctx()) throw Error("nf4_linear: x and the weight live in different contexts.");
  Context& ctx = x.ctx();
  const int64_t rows = x.shape().rows();

  if (path == NF4Path::fused && rows > kNF4FusedMaxRows)
    throw Error("nf4_linear: the fused path takes at most " + std::to_string(kNF4FusedMaxRows) +
                " rows of x, got " + std::to_string(rows) + ".");
  const bool fused = path == NF4Path::fused ||
                     (path == NF4Path::automatic && rows >= 1 && rows <= kNF4FusedAutoRows);
  Tensor y = Tensor::empty(ctx, x.shape().with_last(out));
  if (rows == 0 || out == 0) {
  } else if (fused) {
    fused_forward(x, w, y, rows);
  } else {
    Tensor W = nf4_scratch(ctx, out, in);
    dequantize_nf4_into(w, W);
    gemm(x.view(Shape{rows, in}), false, W, true, y.view(Shape{rows, out}));
  }

  if (autograd::any_requires_grad({x})) {
    auto mx = autograd::grad_meta(x);
    const NF4Weight weight = w;  // handles to the same device buffers
    autograd::record(y, [mx, weight, rows, in, out](const Tensor& dy) {
      Context& c = dy.ctx();
      Tensor Wd = nf4_scratch(c, out, in);
      dequantize_nf4_into(weight, Wd);
      auto g = autograd::grad_target(mx);
      gemm(dy.view(Shape{rows, out}), false, Wd, false, g.tensor.view(Shape{rows, in}), 1.0f,
           g.accumulate ? 1.0f : 0.0f);
    });
  }
  return y;
}

}  // namespace magellano::ops
