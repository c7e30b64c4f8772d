// bench_moe: one MoE layer (nn::MoE, dropless top-K routing, SwiGLU experts), forward alone and
// forward + backward, next to the fp32 GEMM rate measured in the same run on the same device at
// the shape of one expert's GEMM (ops::gemm, (R/X, D) x (F, D)^T).
//
// Model FLOPs counted: matrix products only (elementwise, softmax, sort, gather/scatter are not
// counted): forward = 2·N·D·X (router) + R·2·D·F·m (experts; m = 3 matrices for SwiGLU, 2 for
// GELU; R = N·K routed rows); backward = 2 x forward (input and weight gradients);
// forward + backward = 3 x forward. GFLOP/s = model FLOPs / median wall time.
//
// Prints one JSON object. Usage:
//   bench_moe [--device SPEC] [--tokens N] [--dim D] [--hidden F] [--experts X] [--top-k K]
//             [--gelu] [--repeats R]
// Defaults: N = 4096, D = 1024, F = 2816, X = 8, K = 2, R = 3 (median of R after one warm-up).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.hpp"

#include "magellano/autograd/tape.hpp"
#include "magellano/nn/moe.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/runtime/device.hpp"
#include "magellano/runtime/error.hpp"

using namespace magellano;


int main(int argc, char** argv) {
  std::string device;
  int64_t n = 4096, d = 1024, f = 2816, x = 8, k = 2;
  int repeats = 3;
  bool gelu = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return bench::option_value(argc, argv, i); };
    if (a == "--device") device = next();
    else if (a == "--tokens") n = std::stoll(next());
    else if (a == "--dim") d = std::stoll(next());
    else if (a == "--hidden") f = std::stoll(next());
    else if (a == "--experts") x = std::stoll(next());
    else if (a == "--top-k") k = std::stoll(next());
    else if (a == "--repeats") repeats = std::stoi(next());
    else if (a == "--gelu") gelu = true;
    else {
      std::cerr << "usage: bench_moe [--device SPEC] [--tokens N] [--dim D] [--hidden F] "
                   "[--experts X] [--top-k K] [--gelu] [--repeats R]\n";
      return 2;
    }
  }
  try {
    auto ctx = Context::create(device);
    nn::Init init(1234);
    nn::MoEConfig cfg{.dim = d, .hidden = f, .experts = x, .top_k = k, .swiglu = !gelu};
    nn::MoE moe(*ctx, cfg, init);
    Tensor xin = Tensor::from_host(*ctx, Shape{n, d}, init.normal(n * d, 1.0));
    xin.set_requires_grad(true);
    Tensor dout = Tensor::from_host(*ctx, Shape{n, d}, init.normal(n * d, 1.0));
    auto params = moe.parameters();

    const double r = double(n) * k, mats = gelu ? 2 : 3;
    const double fwd_flops = 2.0 * n * d * x + r * 2.0 * d * f * mats;
    const double train_flops = 3.0 * fwd_flops;

    std::vector<int32_t> counts;
    const double t_fwd = bench::median_seconds(*ctx, repeats, [&] {
      autograd::NoGradScope no_grad;
      auto o = moe.forward(xin);
      counts = o.expert_counts.to_host_i32();
    });
    std::cerr << "forward: " << t_fwd << " s\n";
    const double t_train = bench::median_seconds(*ctx, repeats, [&] {
      for (auto& p : params) p.tensor.zero_grad();
      xin.zero_grad();
      auto o = moe.forward(xin);
      Tensor loss = ops::add(ops::sum(ops::mul(o.out, dout)), o.aux_loss);
      autograd::backward(loss);
    });
    std::cerr << "forward + backward: " << t_train << " s\n";

    // The reference GEMM: one expert's share of the rows at the layer's shape.
    const int64_t gm = std::max<int64_t>(1, (n * k) / x);
    Tensor ga = Tensor::full(*ctx, Shape{gm, d}, 0.5f), gb = Tensor::full(*ctx, Shape{f, d}, 0.25f);
    Tensor gc = Tensor::empty(*ctx, Shape{gm, f});
    const double t_gemm = bench::median_seconds(*ctx, std::max(repeats, 5), [&] {
      ops::gemm(ga, false, gb, true, gc, 1.0f, 0.0f);
    });
    const double gemm_gflops = 2.0 * gm * d * f / t_gemm / 1e9;
    std::cerr << "gemm: " << gemm_gflops << " GFLOP/s\n";

    nlohmann::json out;
    out["date"] = bench::today();
    out["device"] = to_json(ctx->device());
    out["clblast"] = "1.5.3 (Debian), untuned database";
    out["config"] = {{"tokens", n}, {"dim", d}, {"hidden", f}, {"experts", x}, {"top_k", k},
                     {"activation", gelu ? "gelu_erf" : "swiglu"}, {"repeats", repeats}};
    out["flops_counted"] =
        "matrix products only: forward = 2*N*D*X (router) + N*K*2*D*F*m (m = 3 SwiGLU, 2 GELU); "
        "forward+backward = 3 x forward";
    out["expert_counts"] = counts;
    out["forward"] = {{"median_s", t_fwd}, {"model_flops", fwd_flops},
                      {"gflops", fwd_flops / t_fwd / 1e9}};
    out["forward_backward"] = {{"median_s", t_train}, {"model_flops", train_flops},
                               {"gflops", train_flops / t_train / 1e9}};
    out["gemm_reference"] = {{"m", gm}, {"n", f}, {"k", d}, {"trans_b", true},
                             {"median_s", t_gemm}, {"gflops", gemm_gflops}};
    out["ratio_forward_backward_to_gemm"] = train_flops / t_train / 1e9 / gemm_gflops;
    out["ratio_forward_to_gemm"] = fwd_flops / t_fwd / 1e9 / gemm_gflops;
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
