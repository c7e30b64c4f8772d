#include "magellano/nn/mamba.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "magellano/nn/decode_path.hpp"
#include "magellano/ops/activation.hpp"
#include "magellano/ops/conv1d.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/mamba_decode.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/rmsnorm.hpp"
#include "magellano/ops/selective_scan.hpp"
#include "magellano/ops/shape.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {
std::vector<float> dt_bias_init(int64_t n, double dt_min, double dt_max, double floor, Init& init) {
  std::vector<float> u = init.uniform(n, 0.0, 1.0), bias(n);
  for (size_t i = 0; i < u.size(); ++i) {
    double dt = std::exp(u[i] * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min));
    dt = std::max(dt, floor);
    bias[i] = static_cast<float>(dt + std::log(-std::expm1(-dt)));  // softplus⁻¹(dt)
  }
  return bias;
}

MambaMixer::MambaMixer(Context& ctx, const MambaConfig& c, Init& init)
    : cfg(c),
      in_proj(ctx, c.dim, 2 * c.inner(), c.proj_bias, init),
      x_proj(ctx, c.inner(), c.rank() + 2 * c.d_state, false, init),
      dt_proj(ctx, c.rank(), c.inner(), true, init),
      out_proj(ctx, c.inner(), c.dim, c.proj_bias, init) {
  if (c.dim < 1 || c.d_state < 1 || c.d_conv < 1 || c.expand < 1)
    throw Error("Mamba config: dim, d_state, d_conv and expand must be positive.");
  const int64_t E = c.inner(), N = c.d_state, W = c.d_conv;
  // Linear biases start at zero (transformers' _init_weights).
  if (c.proj_bias) {
    in_proj.bias.copy_from_host(std::vector<float>(2 * E, 0.0f).data(), in_proj.bias.nbytes());
    out_proj.bias.copy_from_host(std::vector<float>(c.dim, 0.0f).data(), out_proj.bias.nbytes());
  }
  // conv1d: PyTorch's Conv1d default, U(±1/sqrt(fan_in)) with fan_in = W (one input channel).
  const double cb = 1.0 / std::sqrt(static_cast<double>(W));
  conv_weight = make_parameter(ctx, Shape{E, 1, W}, init.uniform(E * W, -cb, cb));
  if (c.conv_bias) conv_bias = make_parameter(ctx, Shape{E}, init.uniform(E, -cb, cb));
  // dt_proj: weight U(±R^-0.5), bias the inverse softplus of a log-uniform dt.
  const double ds = 1.0 / std::sqrt(static_cast<double>(c.rank()));
  dt_proj.set_weight(init.uniform(E * c.rank(), -ds, ds));
  const auto b = dt_bias_init(E, c.dt_min, c.dt_max, c.dt_init_floor, init);
  dt_proj.bias.copy_from_host(b.data(), b.size() * 4);
  // S4D-real: A = -(1..N) for every channel.
  std::vector<float> a(E * N);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t n = 0; n < N; ++n) a[e * N + n] = static_cast<float>(std::log(double(n + 1)));
  A_log = make_parameter(ctx, Shape{E, N}, a);
  D = make_parameter(ctx, Shape{E}, std::vector<float>(E, 1.0f));
  // out_proj scaled by 1/sqrt(number of layers) (mamba_ssm's rescale_prenorm_residual).
  const double bound = 1.0 / std::sqrt(static_cast<double>(E)) / std::sqrt(double(c.num_layers));
  out_proj.set_weight(init.uniform(E * c.dim, -bound, bound));
  if (c.inner_norms) {  // RMSNorm weights start at 1 (no draws: the other parameters are unchanged)
    dt_norm = make_parameter(ctx, Shape{c.rank()}, std::vector<float>(c.rank(), 1.0f));
    b_norm = make_parameter(ctx, Shape{N}, std::vector<float>(N, 1.0f));
    c_norm = make_parameter(ctx, Shape{N}, std::vector<float>(N, 1.0f));
  }
}

std::array<Tensor, 3> MambaMixer::selection(const Tensor& xc) const {
  auto dbc = ops::split_last(x_proj.forward(xc), {cfg.rank(), cfg.d_state, cfg.d_state});  // dt, B, C
  if (cfg.inner_norms) {
    dbc[0] = ops::rms_norm(dbc[0], dt_norm, cfg.norm_eps);  // (..., R)
    dbc[1] = ops::rms_norm(dbc[1], b_norm, cfg.norm_eps);   // (..., N)
    dbc[2] = ops::rms_norm(dbc[2], c_norm, cfg.norm_eps);   // (..., N)
  }
  return {dt_proj.project(dbc[0]), dbc[1], dbc[2]};  // Δ without its bias (..., E), B, C
}

Tensor MambaMixer::forward(const Tensor& x, MambaState* state) const {
  if (x.shape().ndim() != 3 || x.size(2) != cfg.dim)
    throw Error("Mamba: input must be (B, L, " + std::to_string(cfg.dim) + "), got " + x.shape().str());
  const int64_t E = cfg.inner(), W = cfg.d_conv;
  auto xz = ops::split_last(in_proj.forward(x), {E, E});                       // (B, L, E) x2
  Tensor conv_w = ops::reshape(conv_weight, Shape{E, W});
  Tensor xc = ops::silu(ops::causal_conv1d(xz[0], conv_w, conv_bias));        // (B, L, E)
  const auto [delta, Bm, Cm] = selection(xc);                                  // (B, L, E), (B, L, N) x2
  Tensor A = ops::scale(ops::exp(A_log), -1.0f);                               // (E, N)
  Tensor h_last;
  Tensor y = ops::selective_scan(xc, delta, A, Bm, Cm, D, xz[1], dt_proj.bias,
                                 {true, cfg.scan_chunk}, state ? &h_last : nullptr);
  if (state) {
    autograd::NoGradScope no_grad;
    state->conv = ops::causal_conv1d_state(xz[0], W);
    state->ssm = h_last;
  }
  return out_proj.forward(y);
}

MambaState MambaMixer::empty_state(int64_t batch) const {
  Context& ctx = D.ctx();
  return {Tensor::zeros(ctx, Shape{batch, cfg.inner(), cfg.d_conv - 1}),
          Tensor::zeros(ctx, Shape{batch, cfg.inner(), cfg.d_state}), Tensor(), Tensor()};
}

Tensor MambaMixer::step(const Tensor& x_t, MambaState& st) const {
  autograd::NoGradScope no_grad;
  const int64_t E = cfg.inner(), W = cfg.d_conv;
  auto xz = ops::split_last(in_proj.forward(x_t), {E, E});                     // (B, E) x2
  Tensor xc = ops::silu(ops::causal_conv1d_step(xz[0], conv_weight.view(Shape{E, W}), conv_bias, st.conv));
  const auto [delta, Bm, Cm] = selection(xc);                                  // (B, E), (B, N) x2
  Tensor A = ops::scale(ops::exp(A_log), -1.0f);
  Tensor y = ops::selective_scan_step(xc, delta, A, Bm, Cm, D, xz[1], dt_proj.bias, st.ssm);
  return out_proj.forward(y);
}

void MambaMixer::collect(const std::string& p, std::vector<Parameter>& out) const {
  in_proj.collect(p + "in_proj.", out);
  out.push_back({p + "conv1d.weight", conv_weight, true});
  if (conv_bias.defined()) out.push_back({p + "conv1d.bias", conv_bias, false});
  x_proj.collect(p + "x_proj.", out);
  dt_proj.collect(p + "dt_proj.", out);
  out.push_back({p + "A_log", A_log, false});
  out.push_back({p + "D", D, false});
  out_proj.collect(p + "out_proj.", out);
  if (dt_norm.defined()) {
    out.push_back({p + "dt_layernorm.weight", dt_norm, false});
    out.push_back({p + "b_layernorm.weight", b_norm, false});
    out.push_back({p + "c_layernorm.weight", c_norm, false});
  }
}

void MambaMixer::collect_linears(const std::string& p, std::vector<NamedLinear>& out) {
  in_proj.collect_linears(p + "in_proj.", out);
  x_proj.collect_linears(p + "x_proj.", out);
  dt_proj.collect_linears(p + "dt_proj.", out);
  out_proj.collect_linears(p + "out_proj.", out);
}

void MambaBlock::collect_linears(const std::string& p, std::vector<NamedLinear>& out) {
  mixer.collect_linears(p + "mixer.", out);
}

MambaBlock::MambaBlock(Context& ctx, const MambaConfig& c, Init& init)
    : norm(ctx, c.dim, c.norm_eps), mixer(ctx, c, init) {}

Tensor MambaBlock::forward(const Tensor& x, MambaState* state, const PrefixReversal& reversal) const {
  const Tensor xn = norm.forward(x);
  Tensor y = mixer.forward(xn, state);
  if (reversal.defined() && mixer.cfg.bidirectional_prefix)
    y = ops::add(y, reversal.branch(xn, [&](const Tensor& xr) { return mixer.forward(xr, nullptr); }));
  return ops::add(x, y, residual_scale);
}

bool MambaBlock::fused_step(const Tensor& x_t) const {
  const MambaMixer& m = mixer;
  auto f32 = [](const Tensor& t) { return !t.defined() || t.dtype() == DType::f32; };
  return fused_decode() && !m.cfg.inner_norms && x_t.shape().ndim() == 2 && x_t.size(0) <= ops::kDecodeGemvRows &&
         decode_linear(m.in_proj) && decode_linear(m.x_proj) && (fused_linear(m.dt_proj) || plain_int4(m.dt_proj)) &&
         decode_linear(m.out_proj) &&
         f32(norm.weight) && f32(m.conv_weight) && f32(m.conv_bias) && f32(m.A_log) && f32(m.D) && f32(m.dt_proj.bias) &&
         f32(m.in_proj.bias) && f32(m.out_proj.bias);
}

Tensor MambaBlock::step(const Tensor& x_t, MambaState& state) const {
  autograd::NoGradScope no_grad;
  if (!fused_step(x_t)) return ops::add(x_t, mixer.step(norm.forward(x_t), state), residual_scale);
  // Four launches: in_proj with the block's RMSNorm and the conv step + SiLU; x_proj; dt_proj, the
  // state update and the gate; out_proj with the residual.
  const MambaMixer& m = mixer;
  const int64_t E = m.cfg.inner(), W = m.cfg.d_conv;
  ops::DecodeGemvParts in;
  in.norm = norm.weight, in.eps = norm.eps, in.bias = m.in_proj.bias;
  const auto [xz, xc] =  // (B, 2E), (B, E)
      decode_gemv_conv(m.in_proj, x_t, in, {m.conv_weight.view(Shape{E, W}), m.conv_bias, state.conv});
  if (!state.A.defined()) state.A = ops::scale(ops::exp(m.A_log), -1.0f);
  if (plain_int4(m.dt_proj) && !state.dt_w.defined()) state.dt_w = ops::dequantize_int4(*m.dt_proj.int4);
  const Tensor& dt_w = plain_int4(m.dt_proj) ? state.dt_w : m.dt_proj.weight;
  const Tensor y = ops::mamba_ssm_step(xc, decode_gemv(m.x_proj, xc), dt_w, m.dt_proj.bias,
                                       state.A, m.D, xz, state.ssm);
  ops::DecodeGemvParts out;
  out.bias = m.out_proj.bias, out.residual = x_t, out.scale = residual_scale;
  return decode_gemv(m.out_proj, y, out);
}

void MambaBlock::collect(const std::string& p, std::vector<Parameter>& out) const {
  norm.collect(p + "norm.", out);
  mixer.collect(p + "mixer.", out);
}

}  // namespace magellano::nn
