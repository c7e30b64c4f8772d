#include "magellano/ops/selective_scan.hpp"

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
namespace {

struct Dims {
  int64_t b, l, e, n;
};

// The kernels to run and their width: channels per work-item (VEC, `channels` mapping) or
// channels per work-group (CPG, `states` mapping). Either way the backward's dB / dC partials
// have E / width columns, summed by scan_reduce_bc built with VEC = width.
struct Mapping {
  bool states;
  int64_t width;
  std::string program() const { return states ? "selective_scan_states" : "selective_scan"; }
  std::string knobs(int64_t n) const {
    return "-DDSTATE=" + std::to_string(n) + (states ? " -DCPG=" : " -DVEC=") + std::to_string(width);
  }
  std::string reduce_knobs(int64_t n) const {
    return "-DDSTATE=" + std::to_string(n) + " -DVEC=" + std::to_string(width);
  }
  std::string fwd() const { return states ? "scan_fwd_states" : "scan_fwd"; }
  std::string bwd() const { return states ? "scan_bwd_chunk_states" : "scan_bwd_chunk"; }
  size_t local(int64_t n) const { return states ? width * n : 64; }
  int64_t work_items(int64_t be, int64_t n) const { return states ? be * n : be / width; }
};

Mapping choose_mapping(const Context& ctx, int64_t e, int64_t n, ScanMapping want) {
  const bool gpu = ctx.device().type == "gpu";
  const bool states = want == ScanMapping::states || (want == ScanMapping::automatic && gpu && e % 4 == 0);
  if (states) {
    const int64_t max_wg = std::min<int64_t>(1024, ctx.device().max_work_group_size);
    for (int64_t cpg : {16, 8, 4})
      if (e % cpg == 0 && cpg * n <= max_wg) return {true, cpg};
    if (want == ScanMapping::states)
      throw Error("selective_scan: the states mapping needs E divisible by 4 and 4·N work-items per "
                  "group; got E = " + std::to_string(e) + ", N = " + std::to_string(n) + ".");
  }
  // Explicit SIMD across channels on CPUs (PoCL does not vectorise across work-items whose
  // body loops); one channel per work-item elsewhere.
  if (ctx.device().type == "cpu")
    for (int64_t v : {8, 4})
      if (e % v == 0) return {false, v};
  return {false, 1};
}

Dims check_shapes(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                  const Tensor& Cm, const Tensor& D, const Tensor& z, const Tensor& bias) {
  using detail::require_f32;
  for (auto [t, name] : {std::pair{&u, "u"}, {&delta, "delta"}, {&A, "A"}, {&Bm, "B"}, {&Cm, "C"}, {&D, "D"}})
    require_f32(*t, "selective_scan", name);
  if (u.shape().ndim() != 3 || A.shape().ndim() != 2)
    throw Error("selective_scan: u must be (B, L, E) and A (E, N); got " + u.shape().str() +
                " and " + A.shape().str() + ".");
  const Dims d{u.size(0), u.size(1), u.size(2), A.size(1)};
  const Shape ble{d.b, d.l, d.e}, bln{d.b, d.l, d.n};
  auto expect = [](const Tensor& t, const Shape& s, const char* name) {
    if (t.defined() && t.shape() != s)
      throw Error(std::string("selective_scan: ") + name + " must be " + s.str() + ", got " +
                  t.shape().str() + ".");
  };
  expect(delta, ble, "delta");
  expect(A, Shape{d.e, d.n}, "A");
  expect(Bm, bln, "B");
  expect(Cm, bln, "C");
  expect(D, Shape{d.e}, "D");
  expect(z, ble, "z");
  expect(bias, Shape{d.e}, "delta_bias");
  if (d.n < 1 || d.n > 64) throw Error("selective_scan: state size N must be 1..64, got " + std::to_string(d.n));
  return d;
}

// A tensor to write an input's gradient into: its grad target, or scratch when it needs none.
autograd::GradTarget target_or_scratch(const std::shared_ptr<AutogradMeta>& m, Context& ctx,
                                       const Shape& s) {
  if (m) return autograd::grad_target(m);
  return {Tensor::empty(ctx, s, DType::f32, MemCategory::scratch), false};
}

}  // namespace

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& z, const Tensor& bias,
                      const ScanOptions& opt, Tensor* h_last) {
  const Dims d = check_shapes(u, delta, A, Bm, Cm, D, z, bias);
  if (opt.chunk < 1) throw Error("selective_scan: chunk must be positive.");
  Context& fwd_ctx = u.ctx();
  const int64_t nc = (d.l + opt.chunk - 1) / opt.chunk;
  Tensor out = Tensor::empty(fwd_ctx, Shape{d.b, d.l, d.e});
  Tensor hs = Tensor::empty(fwd_ctx, Shape{d.b, std::max<int64_t>(nc, 1), d.e, d.n});
  Tensor last = Tensor::empty(fwd_ctx, Shape{d.b, d.e, d.n});
  const bool has_z = z.defined(), has_bias = bias.defined();
  const Mapping map = choose_mapping(fwd_ctx, d.e, d.n, opt.mapping);
  Launch(fwd_ctx, map.program(), map.fwd(), map.knobs(d.n))
      .arg(u).arg(delta).arg(A).arg(Bm).arg(Cm).arg(D).arg(has_z ? z : u).arg(has_bias ? bias : D)
      .arg(out).arg(hs).arg(last)
      .arg(int32_t(d.b)).arg(int32_t(d.l)).arg(int32_t(d.e)).arg(int32_t(opt.chunk))
      .arg(int32_t(has_z)).arg(int32_t(has_bias)).arg(int32_t(opt.delta_softplus))
      .run(map.work_items(d.b * d.e, d.n), map.local(d.n));
  if (h_last) *h_last = last;

  if (autograd::any_requires_grad({u, delta, A, Bm, Cm, D, z, bias})) {
    using autograd::grad_meta;
    autograd::record(out, [=, m_u = grad_meta(u), m_delta = grad_meta(delta), m_A = grad_meta(A),
                           m_B = grad_meta(Bm), m_C = grad_meta(Cm), m_D = grad_meta(D),
                           m_z = grad_meta(z), m_bias = grad_meta(bias)](const Tensor& dout) {
      Context& ctx = dout.ctx();
      const Shape ble{d.b, d.l, d.e}, bln{d.b, d.l, d.n};
      const int64_t be = d.b * d.e, chunk = std::min<int64_t>(opt.chunk, d.l);
      auto scratch = [&](const Shape& s) { return Tensor::empty(ctx, s, DType::f32, MemCategory::scratch); };
      Tensor Hs = scratch(Shape{chunk, d.n, be}), G = scratch(Shape{d.n, be});
      Tensor dBc = scratch(Shape{d.b, chunk, d.n, d.e / map.width}),
             dCc = scratch(Shape{d.b, chunk, d.n, d.e / map.width});
      Tensor dA_p = scratch(Shape{d.b, d.e * d.n}), dD_p = scratch(Shape{d.b, d.e}),
             dbias_p = scratch(Shape{d.b, d.e});
      auto du = target_or_scratch(m_u, ctx, ble), ddelta = target_or_scratch(m_delta, ctx, ble);
      auto dz = has_z ? target_or_scratch(m_z, ctx, ble) : autograd::GradTarget{u, false};
      auto dB = target_or_scratch(m_B, ctx, bln), dC = target_or_scratch(m_C, ctx, bln);
      for (int64_t c = nc - 1; c >= 0; --c) {
        Launch(ctx, map.program(), map.bwd(), map.knobs(d.n))
            .arg(u).arg(delta).arg(A).arg(Bm).arg(Cm).arg(D).arg(has_z ? z : u)
            .arg(has_bias ? bias : D).arg(dout).arg(hs).arg(Hs).arg(G)
            .arg(du.tensor).arg(ddelta.tensor).arg(dz.tensor).arg(dBc).arg(dCc)
            .arg(dA_p).arg(dD_p).arg(dbias_p)
            .arg(int32_t(d.b)).arg(int32_t(d.l)).arg(int32_t(d.e)).arg(int32_t(opt.chunk))
            .arg(int32_t(c)).arg(int32_t(has_z)).arg(int32_t(has_bias))
            .arg(int32_t(opt.delta_softplus)).arg(int32_t(du.accumulate))
            .arg(int32_t(ddelta.accumulate)).arg(int32_t(dz.accumulate))
            .run(map.work_items(be, d.n), map.local(d.n));
        const int64_t len = std::min<int64_t>(d.l, (c + 1) * opt.chunk) - c * opt.chunk;
        Launch(ctx, "selective_scan", "scan_reduce_bc", map.reduce_knobs(d.n))
            .arg(dBc).arg(dCc).arg(dB.tensor).arg(dC.tensor)
            .arg(int32_t(d.b)).arg(int32_t(d.l)).arg(int32_t(d.e)).arg(int32_t(opt.chunk))
            .arg(int32_t(c)).arg(int32_t(dB.accumulate)).arg(int32_t(dC.accumulate))
            .run(d.b * len * d.n);
      }
      // Per-channel sums over the batch, in a fixed order.
      if (m_A) {
        auto g = autograd::grad_target(m_A);
        colsum_into(dA_p, d.e * d.n, g.tensor, 1.0f, g.accumulate);
      }
      if (m_D) {
        auto g = autograd::grad_target(m_D);
        colsum_into(dD_p, d.e, g.tensor, 1.0f, g.accumulate);
      }
      if (m_bias) {
        auto g = autograd::grad_target(m_bias);
        colsum_into(dbias_p, d.e, g.tensor, 1.0f, g.accumulate);
      }
    });
  }
  return out;
}

Tensor selective_scan_step(const Tensor& u_t, const Tensor& delta_t, const Tensor& A,
                           const Tensor& Bt, const Tensor& Ct, const Tensor& D, const Tensor& z_t,
                           const Tensor& bias, const Tensor& h, bool delta_softplus) {
  if (u_t.shape().ndim() != 2 || A.shape().ndim() != 2)
    throw Error("selective_scan_step: u_t must be (B, E) and A (E, N).");
  const int64_t b = u_t.size(0), e = u_t.size(1), n = A.size(1);
  if (h.shape() != Shape{b, e, n} || Bt.shape() != Shape{b, n} || Ct.shape() != Shape{b, n} ||
      delta_t.shape() != u_t.shape() || (z_t.defined() && z_t.shape() != u_t.shape()))
    throw Error("selective_scan_step: shapes do not match: u_t " + u_t.shape().str() + ", h " +
                h.shape().str() + ", B_t " + Bt.shape().str() + ".");
  Tensor out = Tensor::empty(u_t.ctx(), Shape{b, e});
  Launch(u_t.ctx(), "selective_scan", "scan_step", "-DDSTATE=" + std::to_string(n))
      .arg(u_t).arg(delta_t).arg(A).arg(Bt).arg(Ct).arg(D).arg(z_t.defined() ? z_t : u_t)
      .arg(bias.defined() ? bias : D).arg(h).arg(out)
      .arg(int32_t(b)).arg(int32_t(e)).arg(int32_t(z_t.defined())).arg(int32_t(bias.defined()))
      .arg(int32_t(delta_softplus))
      .run(b * e, 64);
  return out;
}

}  // namespace magellano::ops
