// `bench moe`: one MoE layer (nn::MoE, dropless top-K routing, SwiGLU or GELU experts), forward
// alone and forward + backward, in model GFLOP/s (so the percentage of peak is against the
// fp32 GEMM peak), plus the GEMM rate at one expert's shape measured in the same run.
// Model FLOPs counted: matrix products only (elementwise, softmax, sort, gather/scatter are not
// counted): forward = 2·N·D·X (router) + R·2·D·F·m (experts; m = 3 matrices for SwiGLU, 2 for
// GELU; R = N·K routed rows); backward = 2 x forward; forward + backward = 3 x forward.
// Options: --tokens N (4096) --dim D (1024) --hidden F (2816) --experts X (8) --top-k K (2)
//          --activation swiglu|gelu.
#include <algorithm>

#include "bench.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/nn/moe.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

std::vector<Result> run_moe(Context& ctx, const Peaks&, const Options& opts) {
  const int64_t n = integer_in(opts, "tokens", 1, 1 << 24);
  const int64_t d = integer_in(opts, "dim", 1, 1 << 16);
  const int64_t f = integer_in(opts, "hidden", 1, 1 << 18);
  const int64_t x = integer_in(opts, "experts", 1, 1024);
  const int64_t k = integer_in(opts, "top-k", 1, x);
  const std::string act = opts.str("activation");
  if (act != "swiglu" && act != "gelu") throw Error("--activation must be swiglu or gelu, not '" + act + "'.");
  const int repeats = repeats_option(opts, 3);

  nn::Init init(1234);
  nn::MoE moe(ctx, {.dim = d, .hidden = f, .experts = x, .top_k = k, .swiglu = act == "swiglu"}, init);
  Tensor xin = Tensor::from_host(ctx, Shape{n, d}, init.normal(n * d, 1.0));
  xin.set_requires_grad(true);
  Tensor dout = Tensor::from_host(ctx, Shape{n, d}, init.normal(n * d, 1.0));
  auto params = moe.parameters();

  const double fwd_flops = 2.0 * n * d * x + double(n) * k * 2.0 * d * f * (act == "swiglu" ? 3 : 2);
  std::vector<int32_t> counts;
  const double t_fwd = median_seconds(ctx, repeats, [&] {
    autograd::NoGradScope no_grad;
    counts = moe.forward(xin).expert_counts.to_host_i32();
  });
  const double t_train = median_seconds(ctx, repeats, [&] {
    for (auto& p : params) p.tensor.zero_grad();
    xin.zero_grad();
    auto o = moe.forward(xin);
    autograd::backward(ops::add(ops::sum(ops::mul(o.out, dout)), o.aux_loss));
  });
  // The reference GEMM: one expert's share of the routed rows at the layer's shape.
  const int64_t gm = std::max<int64_t>(1, n * k / x);
  const Result gemm = measure_gemm(ctx, gm, f, d, std::max(repeats, 3));

  const nlohmann::json sizes = {{"tokens", n}, {"dim", d}, {"hidden", f}, {"experts", x},
                                {"top_k", k}, {"activation", act}};
  const nlohmann::json ref = {{"m", gm}, {"n", f}, {"k", d}, {"gflops", gemm.gflops}};
  std::vector<Result> out;
  for (auto [name, flops, s] : {std::tuple{"moe_forward", fwd_flops, t_fwd},
                                std::tuple{"moe_forward_backward", 3 * fwd_flops, t_train}}) {
    Result r;
    r.name = name;
    r.sizes = sizes;
    r.median_s = s;
    r.repeats = repeats;
    r.gflops = flops / s / 1e9;
    r.extra = {{"model_flops", flops}, {"expert_gemm", ref}, {"ratio_to_expert_gemm", r.gflops / gemm.gflops},
               {"expert_counts", counts}};
    out.push_back(r);
  }
  return out;
}

RegisterBench reg{{"moe", "One MoE layer forward and forward + backward (model GFLOP/s)",
                   {{"tokens", Key::integer, "4096", "tokens N routed through the layer"},
                    {"dim", Key::integer, "1024", "model width D"},
                    {"hidden", Key::integer, "2816", "expert hidden width F"},
                    {"experts", Key::integer, "8", "experts X"},
                    {"top-k", Key::integer, "2", "experts per token K"},
                    {"activation", Key::text, "swiglu", "expert activation: swiglu or gelu"}},
                   run_moe}};

}  // namespace
}  // namespace magellano::bench
