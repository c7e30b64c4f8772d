#include "mamba2_reference.hpp"

#include "harness.hpp"

namespace mgtest::ref {
namespace {

// Every intermediate of the forward, for the backward.
struct Forward {
  Vec xn, zxd, z, xbc, dt, pre, xc, xs, Bm, Cm, y, u, out;
};

SsdDims ssd_dims(const Mamba2Dims& s) {
  SsdDims d{s.b, s.l, s.h(), s.p, s.g, s.n};
  d.lo = s.lo, d.hi = s.hi;
  return d;
}

Forward forward(const Mamba2Dims& s, const Mamba2Weights& w, const Vec& x) {
  const int64_t M = s.b * s.l, I = s.in_out(), C = s.c(), GN = s.g * s.n;
  Forward f;
  f.xn = rmsnorm(x, M, s.d, w.norm, s.eps);
  f.zxd = linear(f.xn, M, s.d, w.in_w, I, w.in_b);
  f.z = cols(f.zxd, M, I, 0, s.di);
  f.xbc = cols(f.zxd, M, I, s.di, C);
  f.dt = cols(f.zxd, M, I, s.di + C, s.h());
  f.pre = conv(f.xbc, s.b, s.l, C, w.conv_w, s.k, w.conv_b);
  f.xc = silu(f.pre);
  f.xs = cols(f.xc, M, C, 0, s.di);
  f.Bm = cols(f.xc, M, C, s.di, GN);
  f.Cm = cols(f.xc, M, C, s.di + GN, GN);
  f.y = ssd_scan(ssd_dims(s), {f.xs, f.dt, w.dt_bias, w.A_log, f.Bm, f.Cm, w.D});
  f.u = gated_rms_norm(f.y, f.z, w.gated_norm, M, s.di, s.g, s.eps);
  f.out = linear(f.u, M, s.di, w.out_w, s.d, w.out_b);
  for (size_t i = 0; i < f.out.size(); ++i) f.out[i] += x[i];
  return f;
}

}  // namespace

std::vector<Mamba2Weights::Field> Mamba2Weights::fields(const Mamba2Dims& s) {
  const int64_t I = s.in_out(), C = s.c(), H = s.h();
  std::vector<Field> f = {{"norm.weight", {s.d}, &norm}, {"mixer.in_proj.weight", {I, s.d}, &in_w}};
  if (s.bias) f.push_back({"mixer.in_proj.bias", {I}, &in_b});
  f.push_back({"mixer.conv1d.weight", {C, 1, s.k}, &conv_w});
  if (s.conv_bias) f.push_back({"mixer.conv1d.bias", {C}, &conv_b});
  f.push_back({"mixer.dt_bias", {H}, &dt_bias});
  f.push_back({"mixer.A_log", {H}, &A_log});
  f.push_back({"mixer.D", {H}, &D});
  f.push_back({"mixer.norm.weight", {s.di}, &gated_norm});
  f.push_back({"mixer.out_proj.weight", {s.d, s.di}, &out_w});
  if (s.bias) f.push_back({"mixer.out_proj.bias", {s.d}, &out_b});
  return f;
}

Mamba2Weights random_mamba2_weights(const Mamba2Dims& s, uint64_t seed) {
  const int64_t I = s.in_out(), C = s.c(), H = s.h();
  Mamba2Weights w;
  w.norm = uniform(s.d, seed, 0.5, 1.5);
  w.in_w = randn(I * s.d, seed + 1, 0.4);
  if (s.bias) w.in_b = randn(I, seed + 2, 0.1);
  w.conv_w = randn(C * s.k, seed + 3, 0.4);
  if (s.conv_bias) w.conv_b = randn(C, seed + 4, 0.1);
  w.dt_bias = randn(H, seed + 5, 0.5);
  for (auto& b : w.dt_bias) b -= 2.0;  // softplus(-2) ~ 0.13, a typical initial step size
  w.A_log = randn(H, seed + 6, 0.1);
  for (int64_t h = 0; h < H; ++h) w.A_log[h] += std::log(double(h + 1));
  w.D = uniform(H, seed + 7, 0.5, 1.5);
  w.gated_norm = uniform(s.di, seed + 8, 0.5, 1.5);
  w.out_w = randn(s.d * s.di, seed + 9, 0.3);
  if (s.bias) w.out_b = randn(s.d, seed + 10, 0.1);
  return w;
}

Vec mamba2_block(const Mamba2Dims& s, const Mamba2Weights& w, const Vec& x) { return forward(s, w, x).out; }

Vec mamba2_block_bwd(const Mamba2Dims& s, const Mamba2Weights& w, const Vec& x, const Vec& dout, Mamba2Weights& dw) {
  const int64_t M = s.b * s.l, I = s.in_out(), C = s.c(), GN = s.g * s.n;
  const Forward f = forward(s, w, x);
  for (const auto& [from, to] : std::vector<std::pair<const Vec*, Vec*>>{
           {&w.norm, &dw.norm}, {&w.in_w, &dw.in_w}, {&w.in_b, &dw.in_b}, {&w.conv_w, &dw.conv_w},
           {&w.conv_b, &dw.conv_b}, {&w.dt_bias, &dw.dt_bias}, {&w.A_log, &dw.A_log}, {&w.D, &dw.D},
           {&w.gated_norm, &dw.gated_norm}, {&w.out_w, &dw.out_w}, {&w.out_b, &dw.out_b}})
    to->assign(from->size(), 0.0);
  Vec du(f.u.size(), 0.0);
  linear_bwd(f.u, M, s.di, w.out_w, s.d, dout, du, dw.out_w, s.bias ? &dw.out_b : nullptr);
  const std::vector<Vec> gn = gated_rms_norm_bwd(f.y, f.z, w.gated_norm, M, s.di, s.g, s.eps, du);
  for (size_t i = 0; i < gn[2].size(); ++i) dw.gated_norm[i] += gn[2][i];
  const std::vector<Vec> gs =
      ssd_scan_bwd(ssd_dims(s), {f.xs, f.dt, w.dt_bias, w.A_log, f.Bm, f.Cm, w.D}, gn[0]);
  dw.dt_bias = gs[2], dw.A_log = gs[3], dw.D = gs[6];
  Vec dxc(f.xc.size(), 0.0), dpre(f.pre.size(), 0.0), dxbc(f.xbc.size(), 0.0), dzxd(f.zxd.size(), 0.0);
  cols_bwd(dxc, M, C, 0, s.di, gs[0]);
  cols_bwd(dxc, M, C, s.di, GN, gs[4]);
  cols_bwd(dxc, M, C, s.di + GN, GN, gs[5]);
  silu_bwd(f.pre, dxc, dpre);
  conv_bwd(f.xbc, s.b, s.l, C, w.conv_w, s.k, dpre, dxbc, dw.conv_w, dw.conv_b);
  cols_bwd(dzxd, M, I, 0, s.di, gn[1]);
  cols_bwd(dzxd, M, I, s.di, C, dxbc);
  cols_bwd(dzxd, M, I, s.di + C, s.h(), gs[1]);
  Vec dxn(f.xn.size(), 0.0), dx(x.size(), 0.0);
  linear_bwd(f.xn, M, s.d, w.in_w, I, dzxd, dxn, dw.in_w, s.bias ? &dw.in_b : nullptr);
  rmsnorm_bwd(x, M, s.d, w.norm, s.eps, dxn, dx, dw.norm);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] += dout[i];
  return dx;
}

Mamba2Model random_mamba2_model(const Mamba2Dims& dims, int64_t vocab, int64_t layers, bool tie, uint64_t seed) {
  Mamba2Model m;
  m.dims = dims, m.vocab = vocab, m.tie = tie;
  m.embedding = randn(vocab * dims.d, seed, 0.5);
  m.norm_f = uniform(dims.d, seed + 1, 0.5, 1.5);
  if (!tie) m.lm_head = randn(vocab * dims.d, seed + 2, 0.3);
  for (int64_t i = 0; i < layers; ++i) m.blocks.push_back(random_mamba2_weights(dims, seed + 100 * (i + 1)));
  return m;
}

Vec mamba2_model_logits(const Mamba2Model& m, const std::vector<int32_t>& ids, int64_t b, int64_t l) {
  Mamba2Dims s = m.dims;
  s.b = b, s.l = l;
  const int64_t D = s.d;
  Vec h(b * l * D);
  for (int64_t i = 0; i < b * l; ++i)
    std::copy(m.embedding.begin() + ids[i] * D, m.embedding.begin() + (ids[i] + 1) * D, h.begin() + i * D);
  for (const auto& w : m.blocks) h = mamba2_block(s, w, h);
  return linear(rmsnorm(h, b * l, D, m.norm_f, s.eps), b * l, D, m.tie ? m.embedding : m.lm_head, m.vocab);
}

}  // namespace mgtest::ref
