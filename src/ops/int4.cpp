// int4 weights on the device: quantize / dequantize launchers and int4_linear (kernels:
// cl/int4.cl; host reference: src/quant/int4_group.cpp).
#include "magellano/ops/int4.hpp"

#include <algorithm>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/nf4_linear.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops {

uint64_t Int4Weight::nbytes() const {
  return (packed.defined() ? packed.nbytes() : 0) + (scales.defined() ? scales.nbytes() : 0);
}

double Int4Weight::bits_per_param() const {
  return numel() ? 8.0 * static_cast<double>(nbytes()) / static_cast<double>(numel()) : 0.0;
}

namespace {

void require_group(int64_t out, int64_t in, int64_t g, const std::string& what) {
  if (out <= 0 || in <= 0 || g <= 0)
    throw Error(what + ": an int4 weight (" + std::to_string(out) + ", " + std::to_string(in) +
                ") with group size " + std::to_string(g) + " needs positive sizes.");
  if (!Int4Weight::fits(in, g))
    throw Error(what + ": the group size " + std::to_string(g) + " does not divide the input width " +
                std::to_string(in) + " (compressed-tensors requires it to; such a weight stays dense).");
}

Int4Weight allocate(Context& ctx, int64_t out, int64_t in, int64_t g, MemCategory category) {
  Int4Weight q;
  q.shape = Shape{out, in};
  q.group_size = g;
  q.packed = Tensor::empty(ctx, Shape{out * q.words_per_row()}, DType::i32, category);
  q.scales = Tensor::empty(ctx, Shape{out * q.groups_per_row()}, DType::f16, category);
  return q;
}

}  // namespace

Int4Weight quantize_int4(const Tensor& w, int64_t group_size, MemCategory category) {
  detail::require_f32(w, "quantize_int4", "w");
  if (w.shape().ndim() != 2)
    throw Error("quantize_int4: the weight must be 2-D (out, in), got " + w.shape().str() + ".");
  const int64_t out = w.shape()[0], in = w.shape()[1];
  require_group(out, in, group_size, "quantize_int4");
  Int4Weight q = allocate(w.ctx(), out, in, group_size, category);
  Launch(w.ctx(), "int4", "int4_quantize_rows").arg(w).arg(q.packed).arg(q.scales).arg(out).arg(in)
      .arg(group_size).run(static_cast<size_t>(out), 1);
  return q;
}

Int4Weight int4_from_host(Context& ctx, int64_t out, int64_t in, int64_t group_size,
                          const std::vector<int32_t>& packed, const std::vector<float>& scales,
                          const std::string& what, MemCategory category) {
  require_group(out, in, group_size, what);
  Int4Weight q;
  q.shape = Shape{out, in};
  q.group_size = group_size;
  const auto need = [&](const char* part, size_t got, int64_t want) {
    if (static_cast<int64_t>(got) != want)
      throw Error(what + ": " + part + " has " + std::to_string(got) + " values, an int4 weight " + q.shape.str() +
                  " with group size " + std::to_string(group_size) + " needs " + std::to_string(want) + ".");
  };
  need("weight_packed", packed.size(), out * q.words_per_row());
  need("weight_scale", scales.size(), out * q.groups_per_row());
  q.packed = Tensor::from_host_i32(ctx, Shape{out * q.words_per_row()}, packed, category);
  q.scales = Tensor::from_host(ctx, Shape{out * q.groups_per_row()}, scales, DType::f16, category);
  return q;
}

void dequantize_int4_into(const Int4Weight& w, const Tensor& out) {
  if (!w.defined()) throw Error("dequantize_int4: the int4 weight is undefined.");
  if (!out.defined() || out.dtype() != DType::f32 || out.numel() != w.numel())
    throw Error("dequantize_int4: the output must be f32 with " + std::to_string(w.numel()) +
                " elements (the weight " + w.shape.str() + ").");
  const int64_t n = w.out_features(), k = w.in_features();
  Launch(w.ctx(), "int4", "int4_dequantize").arg(w.packed).arg(w.scales).arg(out).arg(n).arg(k)
      .arg(w.group_size).run(static_cast<size_t>(n * w.words_per_row()));
}

Tensor dequantize_int4(const Int4Weight& w, MemCategory category) {
  if (!w.defined()) throw Error("dequantize_int4: the int4 weight is undefined.");
  Tensor out = Tensor::empty(w.ctx(), w.shape, DType::f32, category);
  dequantize_int4_into(w, out);
  return out;
}

namespace {

// y (rows, out) = x (rows, in) · W'ᵀ in one kernel; rows <= kInt4FusedMaxRows.
void fused_forward(const Tensor& x, const Int4Weight& w, const Tensor& y, int64_t rows) {
  Context& ctx = x.ctx();
  const int64_t in = w.in_features(), out = w.out_features();
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  const int64_t lanes = cpu ? 1 : std::min<int64_t>(32, pow2_local_size(ctx));
  Launch launch(ctx, "int4", "int4_linear_small", BuildOptions().define("INT4_M", rows).define("LANES", lanes));
  launch.arg(x).arg(w.packed).arg(w.scales).arg(y).arg(out).arg(in).arg(w.group_size).local_floats(lanes);
  if (cpu) launch.run(static_cast<size_t>(out), 1);
  else launch.run(static_cast<size_t>(out * lanes), static_cast<size_t>(lanes));
}

}  // namespace

Tensor int4_linear(const Tensor& x, const Int4Weight& w, Int4Path path) {
  detail::require_f32(x, "int4_linear", "x");
  if (!w.defined() || w.shape.ndim() != 2)
    throw Error("int4_linear: the int4 weight must be 2-D (out, in), got " +
                (w.defined() ? w.shape.str() : std::string("an undefined weight")) + ".");
  const int64_t in = w.in_features(), out = w.out_features();
  if (x.shape().ndim() < 1 || x.shape().last() != in)
    throw Error("int4_linear: x " + x.shape().str() + " must end in the weight's input size " +
                std::to_string(in) + " (weight " + w.shape.str() + ").");
  if (&x.ctx() != &w.ctx()) throw Error("int4_linear: x and the weight live in different contexts.");
  Context& ctx = x.ctx();
  const int64_t rows = x.shape().rows();
  if (path == Int4Path::fused && rows > kInt4FusedMaxRows)
    throw Error("int4_linear: the fused path takes at most " + std::to_string(kInt4FusedMaxRows) +
                " rows of x, got " + std::to_string(rows) + ".");
  const bool fused = path == Int4Path::fused ||
                     (path == Int4Path::automatic && rows >= 1 && rows <= kInt4FusedAutoRows);
  Tensor y = Tensor::empty(ctx, x.shape().with_last(out));
  if (rows == 0) {
  } else if (fused) {
    fused_forward(x, w, y, rows);
  } else {
    Tensor W = nf4_scratch(ctx, out, in);  // the one per-context scratch of the quantized bases
    dequantize_int4_into(w, W);
    gemm(x.view(Shape{rows, in}), false, W, true, y.view(Shape{rows, out}));
  }

  if (autograd::any_requires_grad({x})) {
    auto mx = autograd::grad_meta(x);
    const Int4Weight weight = w;  // handles to the same device buffers
    autograd::record(y, [mx, weight, rows, in, out](const Tensor& dy) {
      Tensor Wd = nf4_scratch(dy.ctx(), out, in);
      dequantize_int4_into(weight, Wd);
      auto g = autograd::grad_target(mx);
      gemm(dy.view(Shape{rows, out}), false, Wd, false, g.tensor.view(Shape{rows, in}), 1.0f,
           g.accumulate ? 1.0f : 0.0f);
    });
  }
  return y;
}

}  // namespace magellano::ops
