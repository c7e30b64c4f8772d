#include "magellano/nn/mamba2.hpp"

#include <cmath>

#include "magellano/ops/activation.hpp"
#include "magellano/ops/conv1d.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/gated_rmsnorm.hpp"
#include "magellano/ops/shape.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::nn {

void Mamba2Config::validate() const {
  if (dim < 1 || head_dim < 1 || n_groups < 1 || d_state < 1 || d_conv < 1 || expand < 1)
    throw Error("Mamba2 config: dim, head_dim, n_groups, d_state, d_conv and expand must be positive.");
  if (inner() % head_dim)
    throw Error("Mamba2 config: head_dim " + std::to_string(head_dim) + " does not divide the inner width " +
                std::to_string(inner()) + " (expand " + std::to_string(expand) + " x dim " + std::to_string(dim) +
                "); choose a head_dim that divides it.");
  if (heads() % n_groups)
    throw Error("Mamba2 config: n_groups " + std::to_string(n_groups) + " does not divide the " +
                std::to_string(heads()) + " heads (inner width " + std::to_string(inner()) + " / head_dim " +
                std::to_string(head_dim) + "); choose n_groups among the divisors of the head count.");
  if (!(dt_lo >= 0.0f) || !(dt_hi > dt_lo))
    throw Error("Mamba2 config: time_step_limit must satisfy 0 <= lo < hi.");
}

Mamba2Mixer::Mamba2Mixer(Context& ctx, const Mamba2Config& c, Init& init)
    : cfg((c.validate(), c)),  // checked before any buffer is sized from it
      in_proj(ctx, c.dim, c.in_proj_out(), c.bias, init),
      out_proj(ctx, c.inner(), c.dim, c.bias, init) {
  const int64_t Di = c.inner(), H = c.heads(), C = c.conv_channels(), K = c.d_conv;
  // Linear biases start at zero (transformers' _init_weights).
  if (c.bias) {
    in_proj.bias.copy_from_host(std::vector<float>(in_proj.out_features(), 0.0f).data(), in_proj.bias.nbytes());
    out_proj.bias.copy_from_host(std::vector<float>(c.dim, 0.0f).data(), out_proj.bias.nbytes());
  }
  // conv1d: PyTorch's Conv1d default, U(±1/sqrt(fan_in)) with fan_in = K (one input channel).
  const double cb = 1.0 / std::sqrt(static_cast<double>(K));
  conv_weight = make_parameter(ctx, Shape{C, 1, K}, init.uniform(C * K, -cb, cb));
  if (c.conv_bias) conv_bias = make_parameter(ctx, Shape{C}, init.uniform(C, -cb, cb));
  dt_bias = make_parameter(ctx, Shape{H}, dt_bias_init(H, c.time_step_min, c.time_step_max, c.time_step_floor, init));
  // A = -(1..H), one scalar per head (transformers' Mamba2Mixer).
  std::vector<float> a(H);
  for (int64_t h = 0; h < H; ++h) a[h] = static_cast<float>(std::log(double(h + 1)));
  A_log = make_parameter(ctx, Shape{H}, a);
  D = make_parameter(ctx, Shape{H}, std::vector<float>(H, 1.0f));
  norm_weight = make_parameter(ctx, Shape{Di}, std::vector<float>(Di, 1.0f));
  // out_proj scaled by 1/sqrt(number of layers), as the Mamba block's.
  const double bound = 1.0 / std::sqrt(static_cast<double>(Di)) / std::sqrt(double(c.num_layers));
  out_proj.set_weight(init.uniform(Di * c.dim, -bound, bound));
}

ops::SsdOptions Mamba2Mixer::scan_options() const {
  ops::SsdOptions o;
  o.chunk = cfg.chunk;
  o.dt = cfg.step_size();
  return o;
}

Tensor Mamba2Mixer::forward(const Tensor& x, Mamba2State* state) const {
  if (x.shape().ndim() != 3 || x.size(2) != cfg.dim)
    throw Error("Mamba2: input must be (B, L, " + std::to_string(cfg.dim) + "), got " + x.shape().str());
  const int64_t B = x.size(0), L = x.size(1), Di = cfg.inner(), C = cfg.conv_channels(), H = cfg.heads(),
                P = cfg.head_dim, G = cfg.n_groups, N = cfg.d_state, K = cfg.d_conv;
  auto zxd = ops::split_last(in_proj.forward(x), {Di, C, H});  // z, xBC, dt
  const Tensor conv_w = ops::reshape(conv_weight, Shape{C, K});
  const Tensor xbc = ops::silu(ops::causal_conv1d(zxd[1], conv_w, conv_bias));  // (B, L, C)
  auto xbc_parts = ops::split_last(xbc, {Di, G * N, G * N});                       // x, B, C
  Tensor last;
  const Tensor y = ops::ssd_scan(ops::reshape(xbc_parts[0], Shape{B, L, H, P}), zxd[2], dt_bias, A_log,
                                 ops::reshape(xbc_parts[1], Shape{B, L, G, N}),
                                 ops::reshape(xbc_parts[2], Shape{B, L, G, N}), D, scan_options(),
                                 state ? &last : nullptr);  // (B, L, H, P)
  if (state) {
    autograd::NoGradScope no_grad;
    state->conv = ops::causal_conv1d_state(zxd[1], K);
    state->ssm = last;
  }
  const Tensor u = ops::gated_rms_norm(ops::reshape(y, Shape{B, L, Di}), zxd[0], norm_weight, G, cfg.norm_eps);
  return out_proj.forward(u);
}

Mamba2State Mamba2Mixer::empty_state(int64_t batch) const {
  Context& ctx = D.ctx();
  return {Tensor::zeros(ctx, Shape{batch, cfg.conv_channels(), cfg.d_conv - 1}),
          Tensor::zeros(ctx, Shape{batch, cfg.heads(), cfg.head_dim, cfg.d_state}), Tensor(), Tensor()};
}

Tensor Mamba2Mixer::step(const Tensor& x_t, Mamba2State& st) const {
  autograd::NoGradScope no_grad;
  if (x_t.shape().ndim() != 2 || x_t.size(1) != cfg.dim)
    throw Error("Mamba2: a step's input must be (B, " + std::to_string(cfg.dim) + "), got " + x_t.shape().str());
  const int64_t B = x_t.size(0), Di = cfg.inner(), C = cfg.conv_channels(), H = cfg.heads(), P = cfg.head_dim,
                G = cfg.n_groups, N = cfg.d_state, K = cfg.d_conv;
  auto zxd = ops::split_last(in_proj.forward(x_t), {Di, C, H});  // (B, Di), (B, C), (B, H)
  const Tensor xbc = ops::silu(ops::causal_conv1d_step(zxd[1], conv_weight.view(Shape{C, K}), conv_bias, st.conv));
  auto xbc_parts = ops::split_last(xbc, {Di, G * N, G * N});
  const Tensor y = ops::ssd_step(xbc_parts[0].view(Shape{B, H, P}), zxd[2], dt_bias, A_log,
                                 xbc_parts[1].view(Shape{B, G, N}), xbc_parts[2].view(Shape{B, G, N}), D, st.ssm,
                                 cfg.step_size());  // (B, H, P)
  return out_proj.forward(ops::gated_rms_norm(y.view(Shape{B, Di}), zxd[0], norm_weight, G, cfg.norm_eps));
}

void Mamba2Mixer::collect(const std::string& p, std::vector<Parameter>& out) const {
  in_proj.collect(p + "in_proj.", out);
  out.push_back({p + "conv1d.weight", conv_weight, true});
  if (conv_bias.defined()) out.push_back({p + "conv1d.bias", conv_bias, false});
  out.push_back({p + "dt_bias", dt_bias, false});
  out.push_back({p + "A_log", A_log, false});
  out.push_back({p + "D", D, false});
  out.push_back({p + "norm.weight", norm_weight, false});
  out_proj.collect(p + "out_proj.", out);
}

void Mamba2Mixer::collect_linears(const std::string& p, std::vector<NamedLinear>& out) {
  in_proj.collect_linears(p + "in_proj.", out);
  out_proj.collect_linears(p + "out_proj.", out);
}

Mamba2Block::Mamba2Block(Context& ctx, const Mamba2Config& c, Init& init)
    : norm(ctx, c.dim, c.norm_eps), mixer(ctx, c, init) {}

Tensor Mamba2Block::forward(const Tensor& x, Mamba2State* state, const PrefixReversal& reversal) const {
  const Tensor xn = norm.forward(x);
  Tensor y = mixer.forward(xn, state);
  if (reversal.defined() && mixer.cfg.bidirectional_prefix)
    y = ops::add(y, reversal.branch(xn, [&](const Tensor& xr) { return mixer.forward(xr, nullptr); }));
  return ops::add(x, y, residual_scale);
}

Tensor Mamba2Block::step(const Tensor& x_t, Mamba2State& state) const {
  autograd::NoGradScope no_grad;
  return ops::add(x_t, mixer.step(norm.forward(x_t), state), residual_scale);
}

void Mamba2Block::collect(const std::string& p, std::vector<Parameter>& out) const {
  norm.collect(p + "norm.", out);
  mixer.collect(p + "mixer.", out);
}

void Mamba2Block::collect_linears(const std::string& p, std::vector<NamedLinear>& out) {
  mixer.collect_linears(p + "mixer.", out);
}

}  // namespace magellano::nn
