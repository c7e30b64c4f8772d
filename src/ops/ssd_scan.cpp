#include <string>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/ops/ssd.hpp"
#include "ssd_plan.hpp"

namespace magellano::ops {
namespace {

using detail::SsdDims;
using detail::SsdPlan;
using detail::SsdTileKnobs;

SsdDims check_shapes(const Tensor& x, const Tensor& dt, const Tensor& dt_bias, const Tensor& A_log,
                     const Tensor& Bm, const Tensor& Cm, const Tensor& D) {
  using detail::require_f32;
  for (auto [t, name] : {std::pair{&x, "x"}, {&dt, "dt"}, {&dt_bias, "dt_bias"}, {&A_log, "A_log"},
                         {&Bm, "B"}, {&Cm, "C"}})
    require_f32(*t, "ssd_scan", name);
  if (D.defined()) require_f32(D, "ssd_scan", "D");
  if (x.shape().ndim() != 4 || Bm.shape().ndim() != 4)
    throw Error("ssd_scan: x must be (B, L, H, P) and B (B, L, G, N); got " + x.shape().str() + " and " +
                Bm.shape().str() + ".");
  const SsdDims d{x.size(0), x.size(1), x.size(2), x.size(3), Bm.size(2), Bm.size(3)};
  if (d.b < 1 || d.l < 1 || d.h < 1 || d.p < 1 || d.g < 1 || d.n < 1)
    throw Error("ssd_scan: every size must be positive; got x " + x.shape().str() + ", B " +
                Bm.shape().str() + ".");
  auto expect = [](const Tensor& t, const Shape& s, const char* name) {
    if (t.defined() && t.shape() != s)
      throw Error(std::string("ssd_scan: ") + name + " must be " + s.str() + " to match x and B, got " +
                  t.shape().str() + ".");
  };
  expect(dt, Shape{d.b, d.l, d.h}, "dt");
  expect(dt_bias, Shape{d.h}, "dt_bias");
  expect(A_log, Shape{d.h}, "A_log");
  expect(Bm, Shape{d.b, d.l, d.g, d.n}, "B");
  expect(Cm, Shape{d.b, d.l, d.g, d.n}, "C");
  expect(D, Shape{d.h}, "D");
  if (d.h % d.g)
    throw Error("ssd_scan: the " + std::to_string(d.h) + " heads must split evenly into the " +
                std::to_string(d.g) + " groups of B and C (G must divide H).");
  return d;
}

Tensor scratch(Context& ctx, const Shape& s) { return Tensor::empty(ctx, s, DType::f32, MemCategory::scratch); }

// An input's gradient buffer: its grad target, or scratch when it needs no gradient.
autograd::GradTarget target_or_scratch(const std::shared_ptr<AutogradMeta>& m, Context& ctx, const Shape& s) {
  if (m) return autograd::grad_target(m);
  return {scratch(ctx, s), false};
}

// One work-group of tiles.items per (b, chunk, head) (or group, for ssd_chunk_cb).
void run_chunks(Launch& k, const SsdDims& d, const SsdPlan& plan, const SsdTileKnobs& tiles, int64_t heads) {
  k.run(d.b * plan.nc * heads * tiles.items, tiles.items);
}

// out (B, H, NC, N, P) = per chunk sum_t w[t] lhs[t, n] rhs[t, p] (see cl/ssd_chunk.cl).
void chunk_outer(const Tensor& lhs, const Tensor& rhs, const Tensor& dtp, const Tensor& cs, const Tensor& out,
                 bool to_end, const SsdDims& d, const SsdPlan& plan) {
  Launch k(out.ctx(), "ssd_chunk", "ssd_chunk_outer", plan.chunk_knobs(d, plan.fwd));
  k.arg(lhs).arg(rhs).arg(dtp).arg(cs).arg(out).arg(d.l).arg(d.h).arg(d.g).arg(int32_t(to_end));
  run_chunks(k, d, plan, plan.fwd, d.h);
}

// Forward: states (B·H, NC, N, P), each chunk's own state -> the state entering it, and final
// (B, H, P, N); reverse: the state gradients (see cl/ssd_scan.cl). `final` is unused then.
void state_pass(const Tensor& states, const Tensor& decay, const Tensor& final, bool reverse, const SsdDims& d,
                const SsdPlan& plan) {
  Launch(states.ctx(), "ssd_scan", "ssd_state_pass", plan.scan_knobs())
      .arg(states).arg(decay).arg(final).arg(d.b).arg(plan.nc).arg(d.h).arg(d.p).arg(d.n).arg(int32_t(reverse))
      .run(d.b * d.h * d.n * d.p / plan.state_vec);
}

// CB (B, G, NC, Q, QCP): C B^T within every chunk.
Tensor chunk_cb(const Tensor& Cm, const Tensor& Bm, const SsdDims& d, const SsdPlan& plan) {
  const int64_t qcp = (plan.chunk + plan.vec - 1) / plan.vec * plan.vec;
  Tensor cb = scratch(Cm.ctx(), Shape{d.b * d.g, plan.nc, plan.chunk, qcp});
  Launch k(Cm.ctx(), "ssd_chunk", "ssd_chunk_cb", plan.chunk_knobs(d, plan.fwd));
  k.arg(Cm).arg(Bm).arg(cb).arg(d.l).arg(d.g);
  run_chunks(k, d, plan, plan.fwd, d.g);
  return cb;
}

// What the backward needs besides the inputs: the forward's dtp, cs (B, H, L), the decay across
// each chunk (B, H, NC) and the states entering each chunk (B·H, NC, N, P).
struct Saved {
  Tensor x, dt, dt_bias, A_log, Bm, Cm, D, dtp, cs, decay, states;
};

struct Metas {
  std::shared_ptr<AutogradMeta> x, dt, dt_bias, A_log, Bm, Cm, D;
};

void backward(const Saved& s, const Metas& m, const Tensor& dy, const SsdDims& d, const SsdPlan& plan,
              const SsdDt& dto) {
  Context& ctx = dy.ctx();
  const int64_t nc = plan.nc, rows = d.b * nc;
  const BuildOptions bwd_knobs = plan.chunk_knobs(d, plan.bwd), scan_knobs = plan.scan_knobs();
  const Tensor cb = chunk_cb(s.Cm, s.Bm, d, plan);
  // The state gradients: through each chunk's outputs, then passed back across chunks.
  Tensor dstates = scratch(ctx, Shape{d.b * d.h, nc, d.n, d.p}), dcs_end = scratch(ctx, Shape{d.b, d.h, nc});
  chunk_outer(s.Cm, dy, s.dtp, s.cs, dstates, false, d, plan);
  state_pass(dstates, s.decay, dstates, true, d, plan);
  // dx, and the parts of ddtp, dD and dcs_end that come with it.
  const autograd::GradTarget gx = target_or_scratch(m.x, ctx, s.x.shape());
  Tensor ddt_d = scratch(ctx, Shape{d.b, d.h, d.l}), dD_p = scratch(ctx, Shape{rows, d.h});
  const bool has_D = s.D.defined();
  Launch kx(ctx, "ssd_chunk", "ssd_bwd_dx", bwd_knobs);
  kx.arg(s.x).arg(dy).arg(s.Bm).arg(cb).arg(s.dtp).arg(s.cs).arg(dstates).arg(s.states).arg(has_D ? s.D : s.x)
      .arg(gx.tensor).arg(ddt_d).arg(dD_p).arg(dcs_end).arg(d.l).arg(d.h).arg(d.g).arg(int32_t(has_D))
      .arg(int32_t(gx.accumulate));
  run_chunks(kx, d, plan, plan.bwd, d.h);
  // dB, dC per head and the gradient of the cumulative sums.
  Tensor dB_h = scratch(ctx, Shape{d.b, d.l, d.h, d.n}), dC_h = scratch(ctx, Shape{d.b, d.l, d.h, d.n});
  Tensor dcs = scratch(ctx, Shape{d.b, d.h, d.l});
  Launch kbc(ctx, "ssd_chunk", "ssd_bwd_dbc", bwd_knobs);
  kbc.arg(s.x).arg(dy).arg(s.Bm).arg(s.Cm).arg(s.dtp).arg(s.cs).arg(s.states).arg(dstates)
      .arg(dB_h).arg(dC_h).arg(dcs).arg(d.l).arg(d.h).arg(d.g);
  run_chunks(kbc, d, plan, plan.bwd, d.h);
  // dt (through the cumulative sums, the clamp and the softplus) and per-chunk partials.
  const autograd::GradTarget gdt = target_or_scratch(m.dt, ctx, s.dt.shape());
  Tensor dA_log_p = scratch(ctx, Shape{rows, d.h}), dbias_p = scratch(ctx, Shape{rows, d.h});
  Launch(ctx, "ssd_scan", "ssd_bwd_dt", scan_knobs)
      .arg(s.dt).arg(s.dt_bias).arg(s.A_log).arg(s.dtp).arg(ddt_d).arg(dcs).arg(dcs_end).arg(gdt.tensor)
      .arg(dA_log_p).arg(dbias_p).arg(d.b).arg(d.l).arg(d.h).arg(plan.chunk).arg(int32_t(dto.softplus))
      .arg(dto.lo).arg(dto.hi).arg(int32_t(gdt.accumulate))
      .run(d.b * d.h * nc);
  if (m.Bm || m.Cm) {
    const Shape bs = s.Bm.shape();
    const autograd::GradTarget gB = target_or_scratch(m.Bm, ctx, bs), gC = target_or_scratch(m.Cm, ctx, bs);
    Launch(ctx, "ssd_scan", "ssd_sum_heads", scan_knobs)
        .arg(dB_h).arg(dC_h).arg(gB.tensor).arg(gC.tensor).arg(d.b).arg(d.l).arg(d.h).arg(d.g).arg(d.n)
        .arg(int32_t(gB.accumulate)).arg(int32_t(gC.accumulate))
        .run(d.b * d.l * d.g * d.n / plan.state_vec);
  }
  for (auto [meta, part] : {std::pair{m.A_log, dA_log_p}, {m.dt_bias, dbias_p}, {m.D, dD_p}}) {
    if (!meta) continue;
    const autograd::GradTarget t = autograd::grad_target(meta);
    colsum_into(part, d.h, t.tensor, 1.0f, t.accumulate);
  }
}

}  // namespace

Tensor ssd_scan(const Tensor& x, const Tensor& dt, const Tensor& dt_bias, const Tensor& A_log,
                const Tensor& Bm, const Tensor& Cm, const Tensor& D, const SsdOptions& opt,
                Tensor* final_state) {
  const SsdDims d = check_shapes(x, dt, dt_bias, A_log, Bm, Cm, D);
  Context& ctx = x.ctx();
  const SsdPlan plan = detail::plan_ssd(ctx, d, opt);
  const BuildOptions chunk_knobs = plan.chunk_knobs(d, plan.fwd), scan_knobs = plan.scan_knobs();
  Saved s{x, dt, dt_bias, A_log, Bm, Cm, D, Tensor::empty(ctx, Shape{d.b, d.h, d.l}),
          Tensor::empty(ctx, Shape{d.b, d.h, d.l}), Tensor::empty(ctx, Shape{d.b, d.h, plan.nc}),
          Tensor::empty(ctx, Shape{d.b * d.h, plan.nc, d.n, d.p})};
  Launch(ctx, "ssd_scan", "ssd_dt_cumsum", scan_knobs)
      .arg(dt).arg(dt_bias).arg(A_log).arg(s.dtp).arg(s.cs).arg(s.decay).arg(d.b).arg(d.l).arg(d.h).arg(plan.chunk)
      .arg(int32_t(opt.dt.softplus)).arg(opt.dt.lo).arg(opt.dt.hi)
      .run(d.b * d.h * plan.nc);
  chunk_outer(Bm, x, s.dtp, s.cs, s.states, true, d, plan);
  Tensor last = Tensor::empty(ctx, Shape{d.b, d.h, d.p, d.n});
  state_pass(s.states, s.decay, last, false, d, plan);
  if (final_state) *final_state = last;
  const Tensor cb = chunk_cb(Cm, Bm, d, plan);
  Tensor y = Tensor::empty(ctx, x.shape());
  Launch k(ctx, "ssd_chunk", "ssd_chunk_scan", chunk_knobs);
  k.arg(x).arg(Cm).arg(cb).arg(s.dtp).arg(s.cs).arg(s.states).arg(D.defined() ? D : x).arg(y)
      .arg(d.l).arg(d.h).arg(d.g).arg(int32_t(D.defined()));
  run_chunks(k, d, plan, plan.fwd, d.h);

  if (autograd::any_requires_grad({x, dt, dt_bias, A_log, Bm, Cm, D})) {
    using autograd::grad_meta;
    const Metas m{grad_meta(x), grad_meta(dt), grad_meta(dt_bias), grad_meta(A_log),
                  grad_meta(Bm), grad_meta(Cm), grad_meta(D)};
    autograd::record(y, [s, m, d, plan, dto = opt.dt](const Tensor& dy) { backward(s, m, dy, d, plan, dto); });
  }
  return y;
}

Tensor ssd_step(const Tensor& x_t, const Tensor& dt_t, const Tensor& dt_bias, const Tensor& A_log,
                const Tensor& B_t, const Tensor& C_t, const Tensor& D, const Tensor& state, const SsdDt& dto) {
  using detail::require_f32;
  for (auto [t, name] : {std::pair{&x_t, "x_t"}, {&dt_t, "dt_t"}, {&dt_bias, "dt_bias"}, {&A_log, "A_log"},
                         {&B_t, "B_t"}, {&C_t, "C_t"}, {&state, "state"}})
    require_f32(*t, "ssd_step", name);
  if (D.defined()) require_f32(D, "ssd_step", "D");
  if (x_t.shape().ndim() != 3 || B_t.shape().ndim() != 3)
    throw Error("ssd_step: x_t must be (B, H, P) and B_t (B, G, N); got " + x_t.shape().str() + " and " +
                B_t.shape().str() + ".");
  const int64_t b = x_t.size(0), h = x_t.size(1), p = x_t.size(2), g = B_t.size(1), n = B_t.size(2);
  if (dt_t.shape() != Shape{b, h} || dt_bias.shape() != Shape{h} || A_log.shape() != Shape{h} ||
      B_t.shape() != Shape{b, g, n} || C_t.shape() != B_t.shape() || state.shape() != Shape{b, h, p, n} ||
      (D.defined() && D.shape() != Shape{h}))
    throw Error("ssd_step: shapes do not match: x_t " + x_t.shape().str() + " (B, H, P), dt_t " +
                dt_t.shape().str() + " (B, H), B_t " + B_t.shape().str() + ", C_t " + C_t.shape().str() +
                " (B, G, N), state " + state.shape().str() + " (B, H, P, N).");
  if (g < 1 || h % g)
    throw Error("ssd_step: G = " + std::to_string(g) + " must divide H = " + std::to_string(h) + ".");
  Tensor y = Tensor::empty(x_t.ctx(), x_t.shape());
  Launch(x_t.ctx(), "ssd_scan", "ssd_step")
      .arg(x_t).arg(dt_t).arg(dt_bias).arg(A_log).arg(B_t).arg(C_t).arg(D.defined() ? D : x_t).arg(state)
      .arg(y).arg(b).arg(h).arg(g).arg(p).arg(n).arg(int32_t(D.defined())).arg(int32_t(dto.softplus))
      .arg(dto.lo).arg(dto.hi)
      .run(b * h * p);
  return y;
}

}  // namespace magellano::ops
