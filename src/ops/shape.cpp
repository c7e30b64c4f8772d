#include "magellano/ops/shape.hpp"

#include <string>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
using detail::require_f32;

namespace {

// dst[:, dst_col0 : dst_col0 + n] (+)= src[:, src_col0 : src_col0 + n], both seen as `rows` rows.
void copy_cols(const Tensor& src, int64_t src_col0, const Tensor& dst, int64_t dst_col0,
               int64_t n, bool acc) {
  if (n == 0 || src.shape().last() == 0) return;
  const int64_t rows = src.shape().rows();
  // cpu: a work-item per row; gpu: a work-item per element (cl/shape.cl).
  const bool cpu = kernel_mapping(src.ctx()) == KernelMapping::cpu;
  Launch(src.ctx(), "shape", cpu ? "copy_cols_row" : "copy_cols").arg(src).arg(dst).arg(rows)
      .arg(src.shape().last()).arg(src_col0).arg(dst.shape().last()).arg(dst_col0).arg(n).arg(acc)
      .run(cpu ? rows : rows * n, cpu ? kCpuGroupSize : default_local_size(src.ctx()));
}

// dst (rows, d) = src (rows, n) in columns [col0, col0 + n), 0 elsewhere.
void place_cols(const Tensor& src, const Tensor& dst, int64_t rows, int64_t d, int64_t col0,
                int64_t n) {
  const bool cpu = kernel_mapping(src.ctx()) == KernelMapping::cpu;
  Launch(src.ctx(), "shape", cpu ? "place_cols_row" : "place_cols").arg(src).arg(dst).arg(rows)
      .arg(d).arg(col0).arg(n)
      .run(cpu ? rows : rows * d, cpu ? kCpuGroupSize : default_local_size(src.ctx()));
}

int64_t tile_edge(const Context& ctx) { return default_local_size(ctx) >= 256 ? 16 : 8; }

// y (+)= x transposed in its last two dimensions; x viewed as (batch, m, n).
void transpose_into(const Tensor& x, int64_t m, int64_t n, const Tensor& y, bool acc) {
  const int64_t batch = (m && n) ? x.numel() / (m * n) : 0, t = tile_edge(x.ctx());
  const int64_t m_pad = (m + t - 1) / t * t;
  Launch(x.ctx(), "shape", "transpose_last2", BuildOptions().define("TILE", t))
      .arg(x).arg(y).arg(m).arg(n).arg(m_pad).arg(acc)
      .run2d(n, batch * m_pad, t, t);
}

}  // namespace

std::vector<Tensor> split_last(const Tensor& x, const std::vector<int64_t>& sizes) {
  require_f32(x, "split_last", "x");
  const Shape& xs = x.shape();
  if (xs.ndim() < 1) throw Error("split_last: x must have at least one dimension.");
  const int64_t d = xs.last();
  int64_t total = 0;
  std::string list;
  for (int64_t s : sizes) {
    if (s < 0) throw Error("split_last: sizes must be non-negative, got " + std::to_string(s) + ".");
    total += s;
    list += (list.empty() ? "" : ", ") + std::to_string(s);
  }
  if (total != d)
    throw Error("split_last: sizes [" + list + "] sum to " + std::to_string(total) +
                ", but the last dimension of x " + xs.str() + " is " + std::to_string(d) + ".");
  const bool grad = autograd::any_requires_grad({x});
  auto mx = autograd::grad_meta(x);
  std::vector<Tensor> out;
  int64_t col0 = 0;
  for (int64_t n : sizes) {
    Tensor piece = Tensor::empty(x.ctx(), xs.with_last(n));
    copy_cols(x, col0, piece, 0, n, false);
    if (grad) {
      autograd::record(piece, [mx, col0, n, d](const Tensor& dy) {
        auto g = autograd::grad_target(mx);
        const int64_t rows = d ? mx->shape.rows() : 0;
        if (g.accumulate) {
          copy_cols(dy, 0, g.tensor, col0, n, true);
        } else {  // first writer: its columns, and zeros for the pieces that send nothing
          place_cols(dy, g.tensor, rows, d, col0, n);
        }
      });
    }
    out.push_back(piece);
    col0 += n;
  }
  return out;
}

Tensor concat_last(const std::vector<Tensor>& xs) {
  if (xs.empty()) throw Error("concat_last: needs at least one tensor.");
  int64_t d = 0;
  bool grad = false;
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string arg = "xs[" + std::to_string(i) + "]";
    require_f32(xs[i], "concat_last", arg.c_str());
    if (xs[i].shape().ndim() < 1 || xs[i].shape().with_last(1) != xs[0].shape().with_last(1))
      throw Error("concat_last: " + arg + " has shape " + xs[i].shape().str() +
                  ", but every tensor must have the leading dimensions of xs[0] " +
                  xs[0].shape().str() + ".");
    d += xs[i].shape().last();
    grad |= xs[i].requires_grad();
  }
  grad = grad && autograd::grad_enabled();
  Tensor out = Tensor::empty(xs[0].ctx(), xs[0].shape().with_last(d));
  std::vector<std::shared_ptr<AutogradMeta>> metas;
  std::vector<int64_t> offsets;
  int64_t col0 = 0;
  for (const Tensor& x : xs) {
    copy_cols(x, 0, out, col0, x.shape().last(), false);
    metas.push_back(autograd::grad_meta(x));
    offsets.push_back(col0);
    col0 += x.shape().last();
  }
  if (grad) {
    autograd::record(out, [metas, offsets](const Tensor& dy) {
      for (size_t i = 0; i < metas.size(); ++i) {
        if (!metas[i]) continue;
        auto g = autograd::grad_target(metas[i]);
        copy_cols(dy, offsets[i], g.tensor, 0, metas[i]->shape.last(), g.accumulate);
      }
    });
  }
  return out;
}

Tensor transpose_last2(const Tensor& x) {
  require_f32(x, "transpose_last2", "x");
  const Shape& xs = x.shape();
  if (xs.ndim() < 2)
    throw Error("transpose_last2: x must have at least 2 dimensions (..., M, N), got " +
                xs.str() + ".");
  const int64_t m = xs[-2], n = xs[-1];
  std::vector<int64_t> dims = xs.dims();
  std::swap(dims[dims.size() - 1], dims[dims.size() - 2]);
  Tensor y = Tensor::empty(x.ctx(), Shape(dims));
  transpose_into(x, m, n, y, false);
  if (autograd::any_requires_grad({x}))
    autograd::record(y, [mx = autograd::grad_meta(x), m, n](const Tensor& dy) {
      auto g = autograd::grad_target(mx);
      transpose_into(dy, n, m, g.tensor, g.accumulate);
    });
  return y;
}

}  // namespace magellano::ops
