// bench_adamw: the reference system's AdamW benchmark. One 4096 x 4096 fp32 parameter (fp32
// gradient and moments), 100 optimizer steps per timed run; reports the time per run and per
// step and the achieved bandwidth at 28 bytes per parameter per step (read p, g, m, v; write
// p, m, v), next to the copy bandwidth measured in the same run and a plain single-threaded
// C++ fp32 loop of the same update on the host. Also times steps with global-norm clipping
// (one more read of g: 32 bytes per parameter).
// Prints one JSON object. Usage: bench_adamw [--device SPEC] [--n 4096] [--iters 100]
//                                            [--repeats R] [--copy-mib M]
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench_util.hpp"
#include "magellano/nn/module.hpp"
#include "magellano/optim/adamw.hpp"

using namespace magellano;

namespace {

// The same update as cl/adamw.cl, one thread, fp32.
void host_adamw(std::vector<float>& p, const std::vector<float>& g, std::vector<float>& m,
                std::vector<float>& v, int64_t t, float lr, float wd, float b1, float b2,
                float eps) {
  const float decay = float(1.0 - double(lr) * wd), omb1 = float(1.0 - b1), omb2 = float(1.0 - b2);
  const float step_size = float(lr / (1.0 - std::pow(double(b1), double(t))));
  const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(double(b2), double(t))));
  const size_t n = p.size();
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float pi = p[i] * decay;
    const float mi = b1 * m[i] + omb1 * gi;
    const float vi = b2 * v[i] + omb2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string device;
  int64_t n = 4096, copy_mib = 256;
  int iters = 100, repeats = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return bench::option_value(argc, argv, i); };
    if (a == "--device") device = next();
    else if (a == "--n") n = std::stoll(next());
    else if (a == "--iters") iters = std::stoi(next());
    else if (a == "--repeats") repeats = std::stoi(next());
    else if (a == "--copy-mib") copy_mib = std::stoll(next());
    else {
      std::cerr << "usage: bench_adamw [--device SPEC] [--n 4096] [--iters 100] [--repeats R] "
                   "[--copy-mib M]\n";
      return 2;
    }
  }
  try {
    auto ctx = Context::create(device);
    nlohmann::json out;
    out["date"] = bench::today();
    out["device"] = to_json(ctx->device());
    out["copy"] = bench::copy_bandwidth(*ctx, copy_mib, repeats);
    const double peak = out["copy"]["gbps"].get<double>();
    std::cerr << "copy: " << peak << " GB/s\n";

    const int64_t numel = n * n;
    Tensor w = nn::make_parameter(*ctx, Shape{n, n}, std::vector<float>(numel, 0.5f));
    optim::AdamWConfig cfg;  // torch-like defaults: lr 3e-4, betas (0.9, 0.95), wd 0.1
    optim::AdamW opt(*ctx, {{"w", w, true}}, cfg);
    opt.zero_grad();
    for (const auto& c : opt.pack().chunks()) ops::fill(c.grads, 1e-3f);
    out["parameters"] = numel;
    out["iterations"] = iters;
    auto report = [&](const char* name, double seconds, double bytes_per_param) {
      const double per_step = seconds / iters, bytes = bytes_per_param * double(numel);
      nlohmann::json r = {{"name", name}, {"median_s", seconds}, {"per_step_s", per_step},
                          {"bytes_per_param", bytes_per_param}, {"gbps", bytes / per_step / 1e9},
                          {"fraction_of_copy", bytes / per_step / 1e9 / peak}};
      std::cerr << name << ": " << per_step * 1e3 << " ms/step, " << r["gbps"].get<double>()
                << " GB/s\n";
      return r;
    };
    out["device_step"] = report("adamw_step", bench::median_seconds(*ctx, repeats, [&] {
      for (int i = 0; i < iters; ++i) opt.step(cfg.lr);
    }), 28.0);
    out["device_step_clip"] = report("adamw_step_clip", bench::median_seconds(*ctx, repeats, [&] {
      for (int i = 0; i < iters; ++i) opt.step(cfg.lr, 1.0f);
    }), 32.0);
    const float after = w.to_host()[0];
    if (!std::isfinite(after) || after >= 0.5f) throw Error("AdamW benchmark: the update did nothing");

    std::vector<float> p(numel, 0.5f), g(numel, 1e-3f), m(numel, 0.0f), v(numel, 0.0f);
    int64_t t = 0;
    out["host_loop"] = report("host_loop_1thread", bench::median_host_seconds(repeats, [&] {
      for (int i = 0; i < iters; ++i)
        host_adamw(p, g, m, v, ++t, cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps);
    }), 28.0);
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
