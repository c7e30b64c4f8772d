#include "magellano/ops/elementwise.hpp"

#include <atomic>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
using detail::require_f32;

namespace {

std::atomic<int> g_forced_half_vec{0};

// Elements per work-item of cl/half.cl (its header says why): 8 on CPUs, 1 elsewhere.
int64_t half_vec(const Context& ctx) {
  if (const int forced = g_forced_half_vec.load()) return forced;
  return ctx.device().type == "cpu" ? 8 : 1;
}
BuildOptions half_options(const Context& ctx) { return BuildOptions().define("VEC", half_vec(ctx)); }

// Length of b's repeating unit: a.numel() for equal shapes, a.last() for a row vector.
int64_t broadcast_len(const Tensor& a, const Tensor& b, const char* op) {
  if (a.shape() == b.shape()) return a.numel();
  const Shape& s = b.shape();
  bool row = s.numel() == a.shape().last() && s.ndim() >= 1;
  for (int i = 0; row && i + 1 < s.ndim(); ++i) row = s[i] == 1;
  if (!row)
    throw Error(std::string(op) + ": cannot broadcast " + s.str() + " to " + a.shape().str() +
                " (b must have a's shape or be a row of its last dimension).");
  return s.numel();
}

}  // namespace

void scale_into(const Tensor& x, float s, const Tensor& dst, bool acc) {
  if (x.numel() != dst.numel()) throw Error("scale_into: element counts differ.");
  Launch(x.ctx(), "elementwise", "scale_acc", vec_options(x.ctx()))
      .arg(x).arg(dst).arg(x.numel()).arg(s).arg(acc)
      .run(vec_items(x.ctx(), x.numel()));
}

void accumulate_grad(const std::shared_ptr<AutogradMeta>& m, const Tensor& x, float s) {
  if (!m) return;
  auto g = autograd::grad_target(m, true);
  if (g.tensor.dtype() == DType::f32) {
    scale_into(x, s, g.tensor, g.accumulate);
    return;
  }
  require_f32(x, "accumulate_grad", "x");
  if (x.numel() != g.tensor.numel())
    throw Error("accumulate_grad: " + x.shape().str() + " into a gradient of shape " + g.tensor.shape().str());
  const int64_t n = x.numel(), vec = half_vec(x.ctx());
  if (n > 0)
    Launch(x.ctx(), "half", "scale_acc_f16", half_options(x.ctx())).arg(x).arg(g.tensor).arg(n)
        .arg(s).arg(g.accumulate).run((n + vec - 1) / vec);
}

void force_half_vec(int vec) {
  if (vec != 0 && vec != 1 && vec != 8) throw Error("force_half_vec: 0 (by device), 1 or 8.");
  g_forced_half_vec = vec;
}

void cast_into(const Tensor& src, const Tensor& dst) {
  if (src.numel() != dst.numel()) throw Error("cast_into: element counts differ.");
  const int64_t n = src.numel();
  const char* kernel = src.dtype() == DType::f32 && dst.dtype() == DType::f16   ? "f32_to_f16"
                       : src.dtype() == DType::f16 && dst.dtype() == DType::f32 ? "f16_to_f32"
                                                                                : nullptr;
  if (!kernel)
    throw Error(std::string("cast: ") + to_string(src.dtype()) + " -> " + to_string(dst.dtype()) +
                " is not supported (only f32 <-> f16).");
  const int64_t vec = half_vec(src.ctx());
  if (n > 0)
    Launch(src.ctx(), "half", kernel, half_options(src.ctx())).arg(src).arg(dst).arg(n).run((n + vec - 1) / vec);
}

void fill(const Tensor& t, float value) {
  if (t.numel() == 0) return;
  if (t.dtype() != DType::f32 && value != 0.0f) throw Error("fill: non-zero fill needs f32.");
  check_cl(clEnqueueFillBuffer(t.ctx().queue(), t.buffer(), &value,
                               t.dtype() == DType::f32 ? sizeof(float) : 1,
                               t.offset() * dtype_size(t.dtype()), t.nbytes(), 0, nullptr, nullptr),
           "clEnqueueFillBuffer");
}

void copy_into(const Tensor& src, const Tensor& dst) {
  if (src.numel() != dst.numel() || src.dtype() != dst.dtype())
    throw Error("copy_into: " + src.shape().str() + " " + to_string(src.dtype()) + " into " +
                dst.shape().str() + " " + to_string(dst.dtype()));
  if (src.numel() == 0) return;
  const size_t es = dtype_size(src.dtype());
  check_cl(clEnqueueCopyBuffer(src.ctx().queue(), src.buffer(), dst.buffer(), src.offset() * es,
                               dst.offset() * es, src.nbytes(), 0, nullptr, nullptr),
           "clEnqueueCopyBuffer");
}

Tensor clone(const Tensor& x) {
  Tensor out = Tensor::empty(x.ctx(), x.shape(), x.dtype());
  copy_into(x, out);
  return out;
}

Tensor add(const Tensor& a, const Tensor& b, float alpha) {
  require_f32(a, "add", "a");
  require_f32(b, "add", "b");
  const int64_t b_n = broadcast_len(a, b, "add");
  Tensor out = Tensor::empty(a.ctx(), a.shape());
  Launch(a.ctx(), "elementwise", "add", vec_options(a.ctx())).arg(a).arg(b).arg(out).arg(a.numel())
      .arg(b_n).arg(alpha).run(vec_items(a.ctx(), a.numel()));
  if (autograd::any_requires_grad({a, b})) {
    autograd::record(out, [ma = autograd::grad_meta(a), mb = autograd::grad_meta(b), alpha,
                           b_n](const Tensor& dy) {
      accumulate_grad(ma, dy);
      if (!mb) return;
      auto g = autograd::grad_target(mb);
      if (b_n == dy.numel()) scale_into(dy, alpha, g.tensor, g.accumulate);
      else colsum_into(dy, b_n, g.tensor, alpha, g.accumulate);
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  require_f32(a, "mul", "a");
  require_f32(b, "mul", "b");
  const int64_t b_n = broadcast_len(a, b, "mul");
  Tensor out = Tensor::empty(a.ctx(), a.shape());
  Launch(a.ctx(), "elementwise", "mul", vec_options(a.ctx())).arg(a).arg(b).arg(out).arg(a.numel())
      .arg(b_n).run(vec_items(a.ctx(), a.numel()));
  if (autograd::any_requires_grad({a, b})) {
    auto ma = autograd::grad_meta(a), mb = autograd::grad_meta(b);
    // da needs b's values, db needs a's: save only what a needed gradient uses.
    Tensor saved_a = mb ? a : Tensor(), saved_b = ma ? b : Tensor();
    autograd::record(out, [ma, mb, saved_a, saved_b, b_n](const Tensor& dy) {
      const int64_t n = dy.numel();
      if (ma) {
        auto g = autograd::grad_target(ma);
        Launch(dy.ctx(), "elementwise", "mul_acc", vec_options(dy.ctx())).arg(dy).arg(saved_b)
            .arg(g.tensor).arg(n).arg(b_n).arg(1.0f).arg(g.accumulate).run(vec_items(dy.ctx(), n));
      }
      if (mb) {
        auto g = autograd::grad_target(mb);
        if (b_n == n) {
          Launch(dy.ctx(), "elementwise", "mul_acc", vec_options(dy.ctx())).arg(dy).arg(saved_a)
              .arg(g.tensor).arg(n).arg(n).arg(1.0f).arg(g.accumulate).run(vec_items(dy.ctx(), n));
        } else {
          Tensor prod = Tensor::empty(dy.ctx(), dy.shape(), DType::f32, MemCategory::scratch);
          Launch(dy.ctx(), "elementwise", "mul", vec_options(dy.ctx())).arg(dy).arg(saved_a)
              .arg(prod).arg(n).arg(n).run(vec_items(dy.ctx(), n));
          colsum_into(prod, b_n, g.tensor, 1.0f, g.accumulate);
        }
      }
    });
  }
  return out;
}

Tensor scale(const Tensor& x, float s) {
  require_f32(x, "scale", "x");
  Tensor out = Tensor::empty(x.ctx(), x.shape());
  scale_into(x, s, out, false);
  if (autograd::any_requires_grad({x}))
    autograd::record(out, [mx = autograd::grad_meta(x), s](const Tensor& dy) {
      accumulate_grad(mx, dy, s);
    });
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor out = x.view(shape);
  if (autograd::any_requires_grad({x}))
    autograd::record(out, [mx = autograd::grad_meta(x)](const Tensor& dy) {
      accumulate_grad(mx, dy.view(mx->shape));
    });
  return out;
}

Tensor cast(const Tensor& x, DType to) {
  if (x.dtype() == to) return x;
  Tensor out = Tensor::empty(x.ctx(), x.shape(), to);
  cast_into(x, out);
  if (autograd::any_requires_grad({x})) {
    // The gradient of a storage cast is the identity; it arrives as f32.
    autograd::record(out, [mx = autograd::grad_meta(x)](const Tensor& dy) {
      accumulate_grad(mx, dy);
    });
  }
  return out;
}

}  // namespace magellano::ops
