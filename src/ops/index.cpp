#include "magellano/ops/index.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
using detail::require_dtype;
using detail::require_f32;

namespace {

void require_1d_ids(const Tensor& idx, const char* op) {
  require_dtype(idx, DType::i32, op, "idx");
  if (idx.shape().ndim() != 1)
    throw Error(std::string(op) + ": idx must be 1-D (N), got " + idx.shape().str() + ".");
}

void require_rows(const Tensor& src, const char* op, const char* arg) {
  require_f32(src, op, arg);
  if (src.shape().ndim() != 2)
    throw Error(std::string(op) + ": '" + arg + "' must be 2-D (rows, D), got " +
                src.shape().str() + ".");
}

void check_row_count(int64_t rows, const char* op) {
  if (rows < 0 || rows > std::numeric_limits<int32_t>::max())
    throw Error(std::string(op) + ": row count " + std::to_string(rows) +
                " must be in [0, 2^31).");
}

// The gradient of a gather: dsrc (+)= scatter-add of dout rows by idx.
void gather_backward(const std::shared_ptr<AutogradMeta>& msrc, const Tensor& idx,
                     const Tensor& dout) {
  auto g = autograd::grad_target(msrc, true);  // scatter_add_rows_into writes f16 too
  scatter_add_rows_into(dout.view(Shape{idx.numel(), g.tensor.shape().last()}),
                        sort_indices(idx), g.tensor, g.accumulate);
}

}  // namespace

SortedIndices sort_indices(const Tensor& keys) {
  require_dtype(keys, DType::i32, "sort_indices", "keys");
  if (keys.shape().ndim() != 1)
    throw Error("sort_indices: keys must be 1-D (N), got " + keys.shape().str() + ".");
  Context& ctx = keys.ctx();
  const int64_t n = keys.numel();
  SortedIndices out{Tensor::empty(ctx, Shape{n}, DType::i32),
                    Tensor::empty(ctx, Shape{n}, DType::i32)};
  if (n == 0) return out;
  const int64_t local = pow2_local_size(ctx), block = 2 * local;
  int64_t p = block;
  while (p < n) p *= 2;
  const BuildOptions opt = BuildOptions().define("SORT_LOCAL", local);
  // P 64-bit words, held as a fresh (offset 0) i32 tensor of 2P elements.
  Tensor data = Tensor::empty(ctx, Shape{2 * p}, DType::i32, MemCategory::scratch);
  Launch(ctx, "sort", "sort_pack", opt).arg(keys).arg(data).arg(n).arg(p).run(p);
  Launch(ctx, "sort", "sort_local", opt).arg(data).run(p / 2, local);
  for (int64_t k = 2 * block; k <= p; k *= 2) {
    for (int64_t j = k / 2; j >= block; j /= 2)
      Launch(ctx, "sort", "sort_step_global", opt).arg(data).arg(p).arg(k).arg(j).run(p / 2);
    Launch(ctx, "sort", "sort_merge_local", opt).arg(data).arg(k).run(p / 2, local);
  }
  Launch(ctx, "sort", "sort_unpack", opt).arg(data).arg(out.keys).arg(out.perm).arg(n).run(n);
  return out;
}

void gather_rows_into(const Tensor& src, const Tensor& idx, const Tensor& out, bool acc) {
  const int64_t r = src.shape()[0], d = src.shape().last(), n = idx.numel();
  if (out.numel() != n * d) throw Error("gather_rows_into: out must hold (N, D) elements.");
  const bool half = src.dtype() == DType::f16;
  // cpu (f32 only): a work-item per 16 columns of a row; else a work-item per element.
  if (!half && kernel_mapping(src.ctx()) == KernelMapping::cpu)
    Launch(src.ctx(), "index", "gather_rows_vec").arg(src).arg(idx).arg(out).arg(n).arg(d).arg(r)
        .arg(acc).run2d((d + 15) / 16, n, 1, 1);
  else
    Launch(src.ctx(), "index", half ? "gather_rows_half" : "gather_rows")
        .arg(src).arg(idx).arg(out).arg(n).arg(d).arg(r).arg(acc).run(n * d);
}

void scatter_add_rows_into(const Tensor& src, const SortedIndices& sorted, const Tensor& out,
                           bool acc) {
  const int64_t n = sorted.keys.numel(), d = out.shape().last(), r = out.shape()[0];
  if (src.numel() != n * d)
    throw Error("scatter_add_rows_into: src " + src.shape().str() + " must be (N, D) = (" +
                std::to_string(n) + ", " + std::to_string(d) + ").");
  if (!acc) fill(out, 0.0f);  // rows no key names; hit rows are then overwritten
  const bool half = out.dtype() == DType::f16;
  // cpu (f32 only): a work-item per 16 columns of a sorted position; else one per element.
  if (!half && kernel_mapping(src.ctx()) == KernelMapping::cpu)
    Launch(src.ctx(), "index", "segment_sum_rows_vec").arg(src).arg(sorted.keys).arg(sorted.perm)
        .arg(out).arg(n).arg(d).arg(r).arg(acc).run2d((d + 15) / 16, n, 1, 1);
  else
    Launch(src.ctx(), "index", half ? "segment_sum_rows_half" : "segment_sum_rows")
        .arg(src).arg(sorted.keys).arg(sorted.perm).arg(out).arg(n).arg(d).arg(r).arg(acc).run(n * d);
}

Tensor gather_rows(const Tensor& src, const Tensor& idx) {
  require_rows(src, "gather_rows", "src");
  require_1d_ids(idx, "gather_rows");
  check_row_count(src.shape()[0], "gather_rows");
  const int64_t n = idx.numel(), d = src.shape().last();
  Tensor out = Tensor::empty(src.ctx(), Shape{n, d});
  gather_rows_into(src, idx, out, false);
  if (autograd::any_requires_grad({src}))
    autograd::record(out, [msrc = autograd::grad_meta(src), idx](const Tensor& dy) {
      gather_backward(msrc, idx, dy);
    });
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  if (weight.defined() && weight.dtype() == DType::f16) {
    if (weight.shape().ndim() != 2)
      throw Error("embedding: 'weight' must be 2-D (rows, D), got " + weight.shape().str() + ".");
  } else {
    require_rows(weight, "embedding", "weight");
  }
  require_dtype(ids, DType::i32, "embedding", "ids");
  if (ids.shape().ndim() < 1 || ids.shape().ndim() >= Shape::kMaxDims)
    throw Error("embedding: ids must have 1 to " + std::to_string(Shape::kMaxDims - 1) +
                " dimensions, got " + ids.shape().str() + ".");
  check_row_count(weight.shape()[0], "embedding");
  std::vector<int64_t> dims = ids.shape().dims();
  dims.push_back(weight.shape().last());
  Tensor flat = ids.view(Shape{ids.numel()});
  Tensor out = Tensor::empty(weight.ctx(), Shape(dims));
  gather_rows_into(weight, flat, out, false);
  if (autograd::any_requires_grad({weight}))
    autograd::record(out, [mw = autograd::grad_meta(weight), flat](const Tensor& dy) {
      gather_backward(mw, flat, dy);
    });
  return out;
}

Tensor scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t rows) {
  require_rows(src, "scatter_add_rows", "src");
  require_1d_ids(idx, "scatter_add_rows");
  check_row_count(rows, "scatter_add_rows");
  if (idx.numel() != src.shape()[0])
    throw Error("scatter_add_rows: idx " + idx.shape().str() + " must have one id per row of src " +
                src.shape().str() + ".");
  Tensor out = Tensor::empty(src.ctx(), Shape{rows, src.shape().last()});
  scatter_add_rows_into(src, sort_indices(idx), out, false);
  if (autograd::any_requires_grad({src}))
    autograd::record(out, [msrc = autograd::grad_meta(src), idx](const Tensor& dy) {
      auto g = autograd::grad_target(msrc);
      gather_rows_into(dy, idx, g.tensor, g.accumulate);
    });
  return out;
}

void validate_indices(const Tensor& idx, int64_t rows, const char* what) {
  require_dtype(idx, DType::i32, "validate_indices", what);
  const std::vector<int32_t> v = idx.to_host_i32();
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < 0 || v[i] >= rows)
      throw Error(std::string(what) + ": id " + std::to_string(v[i]) + " at position " +
                  std::to_string(i) + " is outside [0, " + std::to_string(rows) + ").");
}

}  // namespace magellano::ops
