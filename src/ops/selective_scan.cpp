#include "magellano/ops/selective_scan.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/reduce.hpp"

namespace magellano::ops {
namespace {

constexpr uint64_t kMaxRecomputeScratch = 256ull << 20;  // bytes of recomputed states in flight

struct Dims {
  int64_t b, l, e, n;
  int64_t be() const { return b * e; }
};

// SUB of cl/selective_scan_lanes.cl: the steps whose states the backward keeps in registers.
// 8 by default: on the H100 (bench scan, 4 x 512 x 1024) 0.605 ms forward + backward against 0.690
// with 16 (240 registers a work-item, against 167) and 32 (spills).
// MAGELLANO_SCAN_STRETCH=8|16|32 overrides it (for measurements).
int64_t lanes_stretch() {
  const char* env = std::getenv("MAGELLANO_SCAN_STRETCH");
  if (!env || !*env) return 8;
  const std::string v = env;
  if (v == "8" || v == "16" || v == "32") return std::stoll(v);
  throw Error("MAGELLANO_SCAN_STRETCH must be 8, 16 or 32; got '" + v + "'.");
}

// The three mappings (see cl/selective_scan.cl, cl/selective_scan_states.cl and
// cl/selective_scan_lanes.cl). `width` is the channels per work-item (VEC) of the channels mapping
// or per work-group (CPG) of the states and lanes mappings; either way the backward's dB / dC
// partials have E / width columns, summed by scan_reduce_bc (the channels mapping's program).
struct Mapping {
  ScanMapping kind;
  int64_t width;
  bool shfl = false;  // states and lanes mappings: shuffles (SHFL of their kernels)
  const char* program() const {
    return kind == ScanMapping::lanes ? "selective_scan_lanes"
           : kind == ScanMapping::states ? "selective_scan_states" : "selective_scan";
  }
  BuildOptions knobs(int64_t n) const {
    BuildOptions o = BuildOptions().define("DSTATE", n);
    if (kind == ScanMapping::channels) return o.define("VEC", width);
    o.define("CPG", width).define("SHFL", shfl);
    return kind == ScanMapping::lanes ? o.define("SUB", lanes_stretch()) : o;
  }
  BuildOptions reduce_knobs(int64_t n) const {  // the channels program as this mapping needs it
    return kind == ScanMapping::channels ? knobs(n) : BuildOptions().define("DSTATE", n);
  }
};

// MAGELLANO_SCAN=channels|states|lanes replaces `automatic` (for benchmarks and comparisons).
ScanMapping requested_mapping(ScanMapping want) {
  const char* env = std::getenv("MAGELLANO_SCAN");
  if (want != ScanMapping::automatic || !env || !*env) return want;
  const std::string v = env;
  if (v == "channels") return ScanMapping::channels;
  if (v == "states") return ScanMapping::states;
  if (v == "lanes") return ScanMapping::lanes;
  throw Error("MAGELLANO_SCAN must be channels, states or lanes; got '" + v + "'.");
}

Mapping choose_mapping(const Context& ctx, int64_t e, int64_t n, ScanMapping requested) {
  const ScanMapping want = requested_mapping(requested);
  const DeviceInfo& dev = ctx.device();
  const bool gpu = dev.type == "gpu";
  const int64_t max_wg = std::min<int64_t>(1024, dev.max_work_group_size);
  // Shuffles: NVIDIA's inline PTX (a device reporting its compute capability);
  // MAGELLANO_SCAN_SHFL=0 turns them off.
  const char* env = std::getenv("MAGELLANO_SCAN_SHFL");
  const bool nvidia = dev.nv_compute_capability >= 30 && !(env && std::string(env) == "0");
  if (want == ScanMapping::lanes || (want == ScanMapping::automatic && gpu)) {
    // Four states per work-item, a channel in N/4 neighbouring lanes (a power of two), whole
    // warps of 32 per group, the stretch partials within local memory.
    const int64_t lanes = n / 4;
    if (n % 4 == 0 && (lanes & (lanes - 1)) == 0)
      for (int64_t wg : {128, 64, 32}) {
        const uint64_t local = uint64_t(wg / 32 * lanes_stretch() * 2 * n + wg) * 4;
        if (wg % lanes == 0 && e % (wg / lanes) == 0 && wg <= max_wg && local <= dev.local_mem_bytes)
          return {ScanMapping::lanes, wg / lanes, nvidia};
      }
    if (want == ScanMapping::lanes)
      throw Error("selective_scan: the lanes mapping needs N a multiple of 4 with N/4 a power of two, and E "
                  "divisible by 128·4/N (or 64·4/N, 32·4/N); got E = " + std::to_string(e) + ", N = " +
                  std::to_string(n) + ".");
  }
  if (want == ScanMapping::states || (want == ScanMapping::automatic && gpu)) {
    // Shuffles need the states in power-of-two lanes of a warp and whole warps per group.
    for (int64_t cpg : {16, 8, 4})
      if (e % cpg == 0 && cpg * n <= max_wg)
        return {ScanMapping::states, cpg, nvidia && n <= 16 && (n & (n - 1)) == 0 && cpg * n % 32 == 0};
    if (want == ScanMapping::states)
      throw Error("selective_scan: the states mapping needs E divisible by 4 and 4·N work-items per "
                  "group; got E = " + std::to_string(e) + ", N = " + std::to_string(n) + ".");
  }
  // Explicit SIMD across channels on CPUs (PoCL does not vectorise across work-items whose
  // body loops), as wide as the device's native float vectors (16 with AVX-512: measured 1.5x the
  // forward of 8 there) but at least 4; one channel per work-item elsewhere.
  if (dev.type == "cpu")
    for (int64_t v : {16, 8, 4})
      if ((v <= int64_t(dev.native_float_width) || v == 4) && e % v == 0) return {ScanMapping::channels, v};
  return {ScanMapping::channels, 1};
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
  if (d.l < 1) throw Error("selective_scan: the sequence is empty.");
  return d;
}

// Everything the kernels read, in their argument order (absent z / bias replaced by any
// buffer: the kernels do not read them then).
struct Inputs {
  Tensor u, delta, A, Bm, Cm, D, z, bias;
  bool has_z, has_bias;
  Launch& add_to(Launch& k) const {
    return k.arg(u).arg(delta).arg(A).arg(Bm).arg(Cm).arg(D).arg(has_z ? z : u).arg(has_bias ? bias : D);
  }
};

// An input's gradient buffer: its grad target, or scratch when it needs no gradient.
autograd::GradTarget target_or_scratch(const std::shared_ptr<AutogradMeta>& m, Context& ctx, const Shape& s) {
  if (m) return autograd::grad_target(m);
  return {Tensor::empty(ctx, s, DType::f32, MemCategory::scratch), false};
}

Tensor scratch(Context& ctx, const Shape& s) { return Tensor::empty(ctx, s, DType::f32, MemCategory::scratch); }

// ---- forward: out (B, L, E), hs (B, NC, N, E), h_last (B, E, N) ----------------------------------
void forward_channels(const Inputs& in, const Dims& d, const Mapping& map, const ScanOptions& opt,
                      const Tensor& out, const Tensor& hs, const Tensor& last) {
  Launch k(out.ctx(), "selective_scan", "scan_fwd", map.knobs(d.n));
  in.add_to(k).arg(out).arg(hs).arg(last).arg(d.b).arg(d.l).arg(d.e).arg(opt.chunk)
      .arg(in.has_z).arg(in.has_bias).arg(opt.delta_softplus)
      .run(d.be() / map.width, 64);
}

// The chunked mappings (states, lanes): every chunk's summary, the carries, every chunk again.
// Work-items of the summary and chunk kernels: states: one per (b, c, e, n) in groups of CPG·N;
// lanes: one per (b, c, e, 4 states) in groups of CPG·N/4.
struct ChunkGrid {
  int64_t items, group;
  ChunkGrid(const Dims& d, const Mapping& map, int64_t nc)
      : items(d.be() * nc * (map.kind == ScanMapping::lanes ? d.n / 4 : d.n)),
        group(map.width * (map.kind == ScanMapping::lanes ? d.n / 4 : d.n)) {}
};

std::string kernel_name(const Mapping& map, const char* what) {  // scan_<what> or lanes_<what>
  return std::string(map.kind == ScanMapping::lanes ? "lanes_" : "scan_") + what;
}

BuildOptions carry_knobs(int64_t n) { return BuildOptions().define("DSTATE", n); }

void forward_chunked(const Inputs& in, const Dims& d, const Mapping& map, const ScanOptions& opt,
                     const Tensor& out, const Tensor& hs, const Tensor& last) {
  Context& ctx = out.ctx();
  const int64_t nc = hs.size(1);
  const ChunkGrid grid(d, map, nc);
  Tensor P = scratch(ctx, hs.shape()), S = scratch(ctx, hs.shape());
  Launch(ctx, map.program(), kernel_name(map, "summary_fwd"), map.knobs(d.n))
      .arg(in.u).arg(in.delta).arg(in.A).arg(in.Bm).arg(in.has_bias ? in.bias : in.D).arg(P).arg(S)
      .arg(d.b).arg(d.l).arg(d.e).arg(opt.chunk).arg(in.has_bias).arg(opt.delta_softplus)
      .run(grid.items, grid.group);
  Launch(ctx, "selective_scan_carry", "scan_carry_fwd", carry_knobs(d.n))
      .arg(P).arg(S).arg(hs).arg(last).arg(d.b).arg(d.l).arg(d.e).arg(opt.chunk)
      .run(d.be() * d.n);
  Launch k(ctx, map.program(), kernel_name(map, "chunks_fwd"), map.knobs(d.n));
  in.add_to(k).arg(hs).arg(out).arg(d.b).arg(d.l).arg(d.e).arg(opt.chunk)
      .arg(in.has_z).arg(in.has_bias).arg(opt.delta_softplus)
      .run(grid.items, grid.group);
}

// ---- backward ------------------------------------------------------------------------------------
struct Grads {  // where the kernels write, and whether they add
  autograd::GradTarget du, ddelta, dz, dB, dC;
};

// Partials of dA (rows, E·N), dD and dbias (rows, E), summed over rows afterwards.
struct Partials {
  Tensor dA, dD, dbias;
};

void backward_channels(const Inputs& in, const Dims& d, const Mapping& map, const ScanOptions& opt,
                       const Tensor& hs, const Tensor& dout, const Grads& g, const Partials& p) {
  Context& ctx = dout.ctx();
  // Hs needs one chunk of steps (fewer when L is shorter); dBc / dCc rows are indexed
  // b * chunk + t within the kernels, so they always hold full chunks.
  const int64_t nc = hs.size(1), steps = std::min<int64_t>(opt.chunk, d.l);
  // Hs: the states and their decays, (B·E/VEC, steps, 2, N, VEC).
  Tensor Hs = scratch(ctx, Shape{d.be(), steps, 2, d.n}), G = scratch(ctx, Shape{d.n, d.be()});
  Tensor dBc = scratch(ctx, Shape{d.b, opt.chunk, d.n, d.e / map.width});
  Tensor dCc = scratch(ctx, Shape{d.b, opt.chunk, d.n, d.e / map.width});
  for (int64_t c = nc - 1; c >= 0; --c) {  // chunk by chunk, last first: G carries dL/dh back
    Launch k(ctx, "selective_scan", "scan_bwd_chunk", map.knobs(d.n));
    in.add_to(k).arg(dout).arg(hs).arg(Hs).arg(G)
        .arg(g.du.tensor).arg(g.ddelta.tensor).arg(g.dz.tensor).arg(dBc).arg(dCc)
        .arg(p.dA).arg(p.dD).arg(p.dbias).arg(d.b).arg(d.l).arg(d.e).arg(opt.chunk).arg(c)
        .arg(in.has_z).arg(in.has_bias).arg(opt.delta_softplus)
        .arg(g.du.accumulate).arg(g.ddelta.accumulate).arg(g.dz.accumulate)
        .run(d.be() / map.width, 64);
    const int64_t len = std::min<int64_t>(d.l, (c + 1) * opt.chunk) - c * opt.chunk;
    Launch(ctx, "selective_scan", "scan_reduce_bc", map.reduce_knobs(d.n))
        .arg(dBc).arg(dCc).arg(g.dB.tensor).arg(g.dC.tensor).arg(d.b).arg(d.l).arg(d.e / map.width)
        .arg(opt.chunk).arg(c).arg(g.dB.accumulate).arg(g.dC.accumulate)
        .run(d.b * len * d.n);
  }
}

void backward_chunked(const Inputs& in, const Dims& d, const Mapping& map, const ScanOptions& opt,
                      const Tensor& hs, const Tensor& dout, const Grads& g, const Partials& p) {
  Context& ctx = dout.ctx();
  const int64_t nc = hs.size(1), chunk = opt.chunk;
  const ChunkGrid grid(d, map, nc);
  Tensor P = scratch(ctx, hs.shape()), Q = scratch(ctx, hs.shape()), Gin = scratch(ctx, hs.shape());
  Launch(ctx, map.program(), kernel_name(map, "summary_bwd"), map.knobs(d.n))
      .arg(in.delta).arg(in.A).arg(in.Cm).arg(in.has_z ? in.z : in.u).arg(in.has_bias ? in.bias : in.D)
      .arg(dout).arg(P).arg(Q).arg(d.b).arg(d.l).arg(d.e).arg(chunk)
      .arg(in.has_z).arg(in.has_bias).arg(opt.delta_softplus)
      .run(grid.items, grid.group);
  Launch(ctx, "selective_scan_carry", "scan_carry_bwd", carry_knobs(d.n))
      .arg(P).arg(Q).arg(Gin).arg(d.b).arg(d.l).arg(d.e).arg(chunk)
      .run(d.be() * d.n);
  Tensor dBc = scratch(ctx, Shape{d.b, d.l, d.n, d.e / map.width});
  Tensor dCc = scratch(ctx, Shape{d.b, d.l, d.n, d.e / map.width});
  if (map.kind == ScanMapping::lanes) {
    // Hsub: the state entering each stretch of each chunk, (B·NC, ceil(chunk / SUB), N, E).
    const int64_t sub = lanes_stretch();
    Tensor Hsub = scratch(ctx, Shape{d.b * nc, (chunk + sub - 1) / sub, d.n, d.e});
    Launch k(ctx, map.program(), "lanes_chunks_bwd", map.knobs(d.n));
    in.add_to(k).arg(dout).arg(hs).arg(Gin).arg(Hsub)
        .arg(g.du.tensor).arg(g.ddelta.tensor).arg(g.dz.tensor).arg(dBc).arg(dCc)
        .arg(p.dA).arg(p.dD).arg(p.dbias).arg(d.b).arg(d.l).arg(d.e).arg(chunk)
        .arg(in.has_z).arg(in.has_bias).arg(opt.delta_softplus)
        .arg(g.du.accumulate).arg(g.ddelta.accumulate).arg(g.dz.accumulate)
        .run(grid.items, grid.group);
  } else {
    // Chunks run `flight` at a time so the recomputed states stay within kMaxRecomputeScratch.
    const int64_t items = d.be() * d.n;
    const uint64_t per_chunk = uint64_t(chunk) * items * 4;
    const int64_t flight = std::clamp<int64_t>(kMaxRecomputeScratch / per_chunk, 1, nc);
    Tensor Hs = scratch(ctx, Shape{flight, chunk, d.be(), d.n});
    for (int64_t c0 = 0; c0 < nc; c0 += flight) {
      Launch k(ctx, map.program(), "scan_chunks_bwd", map.knobs(d.n));
      in.add_to(k).arg(dout).arg(hs).arg(Gin).arg(Hs)
          .arg(g.du.tensor).arg(g.ddelta.tensor).arg(g.dz.tensor).arg(dBc).arg(dCc)
          .arg(p.dA).arg(p.dD).arg(p.dbias).arg(d.b).arg(d.l).arg(d.e).arg(chunk).arg(c0).arg(flight)
          .arg(in.has_z).arg(in.has_bias).arg(opt.delta_softplus)
          .arg(g.du.accumulate).arg(g.ddelta.accumulate).arg(g.dz.accumulate)
          .run(items * flight, grid.group);
    }
  }
  // dB, dC of the whole sequence at once: one "chunk" of length L.
  Launch(ctx, "selective_scan", "scan_reduce_bc", map.reduce_knobs(d.n))
      .arg(dBc).arg(dCc).arg(g.dB.tensor).arg(g.dC.tensor).arg(d.b).arg(d.l).arg(d.e / map.width).arg(d.l)
      .arg(int64_t{0}).arg(g.dB.accumulate).arg(g.dC.accumulate)
      .run(d.b * d.l * d.n);
}

}  // namespace

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& z, const Tensor& bias,
                      const ScanOptions& opt, Tensor* h_last) {
  const Dims d = check_shapes(u, delta, A, Bm, Cm, D, z, bias);
  if (opt.chunk < 1) throw Error("selective_scan: chunk must be positive.");
  const int64_t nc = (d.l + opt.chunk - 1) / opt.chunk;
  // The kernels count work-items, work-groups, steps and (b, t, n) rows in int.
  detail::require_int_sizes({d.b * d.e * d.n, d.b * d.l * d.n, d.b * d.e * nc, d.l + opt.chunk},
                            "selective_scan", "the scan kernels");
  Context& ctx = u.ctx();
  const Mapping map = choose_mapping(ctx, d.e, d.n, opt.mapping);
  const Inputs in{u, delta, A, Bm, Cm, D, z, bias, z.defined(), bias.defined()};
  Tensor out = Tensor::empty(ctx, Shape{d.b, d.l, d.e});
  Tensor hs = Tensor::empty(ctx, Shape{d.b, nc, d.n, d.e});  // saved for backward
  Tensor last = Tensor::empty(ctx, Shape{d.b, d.e, d.n});
  if (map.kind != ScanMapping::channels) forward_chunked(in, d, map, opt, out, hs, last);
  else forward_channels(in, d, map, opt, out, hs, last);
  if (h_last) *h_last = last;

  if (autograd::any_requires_grad({u, delta, A, Bm, Cm, D, z, bias})) {
    using autograd::grad_meta;
    autograd::record(out, [=, m_u = grad_meta(u), m_delta = grad_meta(delta), m_A = grad_meta(A),
                           m_B = grad_meta(Bm), m_C = grad_meta(Cm), m_D = grad_meta(D),
                           m_z = grad_meta(z), m_bias = grad_meta(bias)](const Tensor& dout) {
      Context& c = dout.ctx();
      const Shape ble{d.b, d.l, d.e}, bln{d.b, d.l, d.n};
      const Grads g{target_or_scratch(m_u, c, ble), target_or_scratch(m_delta, c, ble),
                    in.has_z ? target_or_scratch(m_z, c, ble) : autograd::GradTarget{u, false},
                    target_or_scratch(m_B, c, bln), target_or_scratch(m_C, c, bln)};
      // Per-(b, e) partials of dA, dD, dbias: per chunk in the chunked mappings, accumulated
      // over chunks in the channels mapping; summed over their rows in a fixed order below.
      const int64_t rows = map.kind != ScanMapping::channels ? nc * d.b : d.b;
      const Partials p{scratch(c, Shape{rows, d.e * d.n}), scratch(c, Shape{rows, d.e}),
                       scratch(c, Shape{rows, d.e})};
      if (map.kind != ScanMapping::channels) backward_chunked(in, d, map, opt, hs, dout, g, p);
      else backward_channels(in, d, map, opt, hs, dout, g, p);
      for (auto [m, part, cols] : {std::tuple{m_A, p.dA, d.e * d.n}, {m_D, p.dD, d.e}, {m_bias, p.dbias, d.e}}) {
        if (!m) continue;
        auto t = autograd::grad_target(m);
        colsum_into(part, cols, t.tensor, 1.0f, t.accumulate);
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
  detail::require_int_sizes({b * e * n}, "selective_scan_step", "the scan kernels");
  Tensor out = Tensor::empty(u_t.ctx(), Shape{b, e});
  Launch(u_t.ctx(), "selective_scan", "scan_step", BuildOptions().define("DSTATE", n))
      .arg(u_t).arg(delta_t).arg(A).arg(Bt).arg(Ct).arg(D).arg(z_t.defined() ? z_t : u_t)
      .arg(bias.defined() ? bias : D).arg(h).arg(out).arg(b).arg(e)
      .arg(z_t.defined()).arg(bias.defined()).arg(delta_softplus)
      .run(b * e, 64);
  return out;
}

}  // namespace magellano::ops
