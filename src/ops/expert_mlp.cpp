#include "magellano/ops/expert_mlp.hpp"

#include <memory>
#include <string>

#include "check.hpp"
#include "half_weights.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/matmul.hpp"

namespace magellano::ops {
using detail::add_weight_grad;
using detail::require_f32;
using detail::widen;

namespace {

using Metas = std::vector<std::shared_ptr<AutogradMeta>>;

// a = act(h1[, h3]) over all R * F elements.   h1, h3, a: (R, F)
void activate(const Tensor& h1, const Tensor& h3, const Tensor& a, ExpertActivation act) {
  const int64_t n = h1.numel();
  if (n == 0) return;
  Context& ctx = h1.ctx();
  const int64_t items = vec_items(ctx, n);
  if (act == ExpertActivation::swiglu)
    Launch(ctx, "moe", "swiglu_fwd", vec_options(ctx)).arg(h1).arg(h3).arg(a).arg(n).run(items);
  else
    Launch(ctx, "activation", "gelu_fwd", vec_options(ctx)).arg(h1).arg(a).arg(n).run(items);
}

void check_args(const Tensor& xs, const std::vector<int64_t>& offsets,
                const std::vector<Tensor>& w1, const std::vector<Tensor>& w2,
                const std::vector<Tensor>& w3, ExpertActivation act) {
  require_f32(xs, "expert_mlp", "xs");
  if (xs.shape().ndim() != 2)
    throw Error("expert_mlp: xs must be (R, D), got " + xs.shape().str() + ".");
  const size_t x = w1.size();
  const bool glu = act == ExpertActivation::swiglu;
  if (x == 0 || w2.size() != x || (glu ? w3.size() != x : !w3.empty()) || offsets.size() != x + 1)
    throw Error("expert_mlp: need X >= 1 experts with X w1, X w2, " +
                std::string(glu ? "X w3" : "no w3 (GELU)") + " and X + 1 offsets.");
  const int64_t r = xs.shape()[0], d = xs.shape()[1], f = w1[0].shape()[0];
  const DType wt = w1[0].dtype();
  if (wt != DType::f32 && wt != DType::f16)
    throw Error(std::string("expert_mlp: weights must be f32 or f16, got ") + to_string(wt) + ".");
  if (offsets.front() != 0 || offsets.back() != r)
    throw Error("expert_mlp: offsets must run from 0 to R = " + std::to_string(r) + ".");
  for (size_t e = 0; e < x; ++e) {
    if (offsets[e + 1] < offsets[e]) throw Error("expert_mlp: offsets must not decrease.");
    const Shape in{f, d}, out{d, f};
    detail::require_dtype(w1[e], wt, "expert_mlp", "w1");
    detail::require_dtype(w2[e], wt, "expert_mlp", "w2");
    if (w1[e].shape() != in || w2[e].shape() != out || (glu && w3[e].shape() != in))
      throw Error("expert_mlp: expert " + std::to_string(e) + " weights must be w1, w3: " +
                  in.str() + ", w2: " + out.str() + ".");
    if (glu) detail::require_dtype(w3[e], wt, "expert_mlp", "w3");
  }
}

}  // namespace

Tensor expert_mlp(const Tensor& xs, const std::vector<int64_t>& offsets,
                  const std::vector<Tensor>& w1, const std::vector<Tensor>& w2,
                  const std::vector<Tensor>& w3, ExpertActivation act) {
  check_args(xs, offsets, w1, w2, w3, act);
  Context& ctx = xs.ctx();
  const bool glu = act == ExpertActivation::swiglu;
  const int64_t x = static_cast<int64_t>(w1.size());
  const int64_t r = xs.shape()[0], d = xs.shape()[1], f = w1[0].shape()[0];
  auto rows = [&offsets](const Tensor& t, int64_t e) {
    return t.narrow_rows(offsets[e], offsets[e + 1]);
  };

  Tensor h1 = Tensor::empty(ctx, Shape{r, f});
  Tensor h3 = glu ? Tensor::empty(ctx, Shape{r, f}) : Tensor();
  for (int64_t e = 0; e < x; ++e) {
    if (offsets[e + 1] == offsets[e]) continue;
    gemm(rows(xs, e), false, widen(w1[e]), true, rows(h1, e));  // (c, D) x (F, D)^T -> (c, F)
    if (glu) gemm(rows(xs, e), false, widen(w3[e]), true, rows(h3, e));
  }
  Tensor a = Tensor::empty(ctx, Shape{r, f}, DType::f32, MemCategory::scratch);
  activate(h1, h3, a, act);
  Tensor y = Tensor::empty(ctx, Shape{r, d});
  for (int64_t e = 0; e < x; ++e) {
    if (offsets[e + 1] == offsets[e]) continue;
    gemm(rows(a, e), false, widen(w2[e]), true, rows(y, e));  // (c, F) x (D, F)^T -> (c, D)
  }
  a = Tensor();

  std::vector<Tensor> all{xs};
  all.insert(all.end(), w1.begin(), w1.end());
  all.insert(all.end(), w2.begin(), w2.end());
  all.insert(all.end(), w3.begin(), w3.end());
  bool any = false;
  for (const auto& t : all) any |= autograd::any_requires_grad({t});
  if (!any) return y;

  Metas m1, m2, m3;
  for (int64_t e = 0; e < x; ++e) {
    m1.push_back(autograd::grad_meta(w1[e]));
    m2.push_back(autograd::grad_meta(w2[e]));
    m3.push_back(glu ? autograd::grad_meta(w3[e]) : nullptr);
  }
  autograd::record(y, [mx = autograd::grad_meta(xs), m1, m2, m3, xs, h1, h3, w1, w2, w3, offsets,
                       act, glu, x, r, f](const Tensor& dy) {
    Context& c = dy.ctx();
    auto rows = [&offsets](const Tensor& t, int64_t e) {
      return t.narrow_rows(offsets[e], offsets[e + 1]);
    };
    auto empty_expert = [&offsets](int64_t e) { return offsets[e + 1] == offsets[e]; };
    const Tensor dy2 = dy.view(Shape{r, dy.numel() / std::max<int64_t>(r, 1)});
    // 1. dw2_e (+)= dy_e^T a_e (a recomputed), and da_e = dy_e w2_e.
    Tensor da = Tensor::empty(c, Shape{r, f}, DType::f32, MemCategory::scratch);
    Tensor buf = Tensor::empty(c, Shape{r, f}, DType::f32, MemCategory::scratch);
    activate(h1, h3, buf, act);
    for (int64_t e = 0; e < x; ++e) {
      // (D, c) x (c, F) -> (D, F); an empty expert: k = 0, a zero fill or a no-op
      add_weight_grad(m2[e], [&](const Tensor& dst, float beta) {
        gemm(rows(dy2, e), true, rows(buf, e), false, dst, 1.0f, beta);
      });
      if (!empty_expert(e)) gemm(rows(dy2, e), false, widen(w2[e]), false, rows(da, e));  // (c, F)
    }
    // 2. dh1 (into da, in place) and dh3 (into buf).
    const int64_t n = r * f;
    if (n > 0) {
      const int64_t items = vec_items(c, n);
      if (glu)
        Launch(c, "moe", "swiglu_bwd", vec_options(c)).arg(h1).arg(h3).arg(da).arg(da).arg(buf)
            .arg(n).run(items);
      else
        Launch(c, "activation", "gelu_bwd", vec_options(c)).arg(h1).arg(da).arg(da).arg(n)
            .arg(false).run(items);
    }
    const Tensor& dh1 = da;
    const Tensor& dh3 = buf;
    // 3. dw1_e, dw3_e (+)= dh_e^T xs_e; dxs_e (+)= dh1_e w1_e + dh3_e w3_e.
    for (int64_t e = 0; e < x; ++e) {
      add_weight_grad(m1[e], [&](const Tensor& dst, float beta) {
        gemm(rows(dh1, e), true, rows(xs, e), false, dst, 1.0f, beta);
      });
      if (glu) add_weight_grad(m3[e], [&](const Tensor& dst, float beta) {
        gemm(rows(dh3, e), true, rows(xs, e), false, dst, 1.0f, beta);
      });
    }
    if (mx) {
      auto g = autograd::grad_target(mx);
      for (int64_t e = 0; e < x; ++e) {
        if (empty_expert(e)) continue;
        const Tensor gx = rows(g.tensor, e);
        gemm(rows(dh1, e), false, widen(w1[e]), false, gx, 1.0f, g.accumulate ? 1.0f : 0.0f);
        if (glu) gemm(rows(dh3, e), false, widen(w3[e]), false, gx, 1.0f, 1.0f);
      }
    }
  });
  return y;
}

}  // namespace magellano::ops
