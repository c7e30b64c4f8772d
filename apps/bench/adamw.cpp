// `bench adamw`: the reference system's AdamW benchmark. One n x n parameter (default 4096 x
// 4096 = 16.8M), `iters` optimizer steps (default 100) per timed run:
//   adamw_fp32       p, g, m, v fp32: 28 bytes per parameter per step (read p g m v, write p m v)
//   adamw_fp16       p, g fp16, m, v fp32: 22 bytes (read 2+2+4+4, write 2+4+4)
//   adamw_fp32_clip  fp32 with global-norm clipping: one more read of g, 32 bytes
//   adamw_int8       fp32 p, g, 8-bit moments (bitsandbytes' blockwise format, code bytes and an
//                    fp32 absmax per 256): ~16.06 bytes (read 4+4+1+1, write 4+1+1, absmax 16/256)
//   adamw_fp32_paged fp32 with the moments in host memory (train.optimizer_offload "host"): the
//                    kernel's 28 bytes plus the moments' 8 bytes uploaded and 8 downloaded: 44
//   adamw_int8_paged 8-bit moments in host memory: 16.06 + 2 x (2 + 8/256) = ~20.13 bytes
//   adamw_fp32 [host] the CPU baseline: a plain single-threaded C++ fp32 loop of the same update
// GB/s = bytes per parameter x parameters x iters / median time, so the percentage of peak is
// the share of the copy bandwidth measured in the same run (the goal: >= 85%).
#include <cmath>

#include "bench.hpp"
#include "magellano/nn/module.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

// The update of cl/adamw.cl, one thread, fp32, no clipping.
void host_adamw(std::vector<float>& p, const std::vector<float>& g, std::vector<float>& m,
                std::vector<float>& v, int64_t t, const optim::AdamWConfig& c) {
  const float lr = c.lr, b1 = c.beta1, b2 = c.beta2, eps = c.eps;
  const float decay = float(1.0 - double(lr) * c.weight_decay), omb1 = float(1.0 - b1), omb2 = float(1.0 - b2);
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

Result make_result(const std::string& name, int64_t n, int64_t iters, int repeats, double seconds,
                   double bytes_per_param) {
  const double numel = double(n) * double(n);
  Result r;
  r.name = name;
  r.sizes = {{"n", n}, {"params", int64_t(numel)}, {"iterations", iters}};
  r.median_s = seconds;
  r.repeats = repeats;
  r.gbps = bytes_per_param * numel * double(iters) / seconds / 1e9;
  r.extra = {{"bytes_per_param", bytes_per_param}, {"per_step_ms", seconds / double(iters) * 1e3}};
  return r;
}

// Times `iters` steps of an optimizer over one n x n parameter of `dtype`, gradients 1e-3.
double time_device(Context& ctx, int64_t n, int64_t iters, int repeats, DType dtype, float max_norm,
                   optim::StateFormat states = optim::StateFormat::fp32,
                   optim::StatePlacement offload = optim::StatePlacement::device) {
  optim::AdamWConfig cfg;  // torch-like defaults: lr 3e-4, betas (0.9, 0.95), wd 0.1
  cfg.states = states;
  cfg.offload = offload;
  Tensor w = Tensor::from_host(ctx, Shape{n, n}, std::vector<float>(size_t(n * n), 0.5f), dtype,
                               MemCategory::parameters);
  w.set_requires_grad(true);
  optim::AdamW opt(ctx, {{"w", w, true}}, cfg);
  for (const auto& c : opt.pack().chunks()) {
    Tensor g = Tensor::full(ctx, Shape{c.numel}, 1e-3f);
    ops::copy_into(dtype == DType::f32 ? g : ops::cast(g, dtype), c.grads);
  }
  const double s = median_seconds(ctx, repeats, [&] {
    for (int64_t i = 0; i < iters; ++i) opt.step(cfg.lr, max_norm);
  });
  const float after = w.to_host()[0];
  if (!std::isfinite(after) || after >= 0.5f) throw Error("AdamW benchmark: the update did nothing");
  return s;
}

std::vector<Result> run_adamw(Context& ctx, const Peaks&, const Options& opts) {
  const int64_t n = integer_in(opts, "n", 1, 32768);
  const int64_t iters = integer_in(opts, "iters", 1, 100000);
  const int repeats = repeats_option(opts, 3);
  std::vector<Result> out;
  out.push_back(make_result("adamw_fp32", n, iters, repeats,
                            time_device(ctx, n, iters, repeats, DType::f32, 0.0f), 28.0));
  out.push_back(make_result("adamw_fp16", n, iters, repeats,
                            time_device(ctx, n, iters, repeats, DType::f16, 0.0f), 22.0));
  out.push_back(make_result("adamw_fp32_clip", n, iters, repeats,
                            time_device(ctx, n, iters, repeats, DType::f32, 1.0f), 32.0));
  const double int8 = 16.0 + 16.0 / 256.0, int8_moments = 2.0 + 8.0 / 256.0;
  out.push_back(make_result("adamw_int8", n, iters, repeats,
                            time_device(ctx, n, iters, repeats, DType::f32, 0.0f, optim::StateFormat::int8), int8));
  out.push_back(make_result("adamw_fp32_paged", n, iters, repeats,
                            time_device(ctx, n, iters, repeats, DType::f32, 0.0f, optim::StateFormat::fp32,
                                        optim::StatePlacement::host),
                            28.0 + 2 * 8.0));
  out.push_back(make_result("adamw_int8_paged", n, iters, repeats,
                            time_device(ctx, n, iters, repeats, DType::f32, 0.0f, optim::StateFormat::int8,
                                        optim::StatePlacement::host),
                            int8 + 2 * int8_moments));

  const size_t numel = size_t(n * n);
  std::vector<float> p(numel, 0.5f), g(numel, 1e-3f), m(numel, 0.0f), v(numel, 0.0f);
  const optim::AdamWConfig cfg;
  int64_t t = 0;
  const double s_host = median_host_seconds(repeats, [&] {
    for (int64_t i = 0; i < iters; ++i) host_adamw(p, g, m, v, ++t, cfg);
  });
  if (!std::isfinite(p[0]) || p[0] >= 0.5f) throw Error("AdamW host loop: the update did nothing");
  Result host = make_result("adamw_fp32", n, iters, repeats, s_host, 28.0);
  host.host = true;
  host.extra["threads"] = 1;
  for (auto& r : out) r.extra["speedup_vs_host_loop"] = s_host / r.median_s;
  out.push_back(host);
  return out;
}

RegisterBench reg{{"adamw", "AdamW steps over n x n parameters: fp32, fp16 storage, clipping, 8-bit and host-paged moments, host loop (GB/s)",
                   {{"n", Key::integer, "4096", "the parameter is an n x n matrix"},
                    {"iters", Key::integer, "100", "optimizer steps per timed run"}},
                   run_adamw}};

}  // namespace
}  // namespace magellano::bench
