// `bench ssd`: Mamba2's chunked scan (ops::ssd_scan), forward and forward + backward, in GFLOP/s
// of the chunked algorithm's useful FLOPs (ops::ssd_scan_work states the formula) and, as the
// `_bytes` results of the same runs, in GB/s of the minimum bytes it must move; and the forward as a plain sequential single-threaded C++ loop
// over L on the host (`--host 0` skips it), whose FLOPs are its own: 5·P·N per (b, t, head)
// (decay·S + (dt·x)·B, then S·C). The device forward's extra.speedup_vs_host_loop compares times.
// Options: --b --l --h --p --n --g (defaults 8, 2048, 16, 64, 64, 1), --chunk (0: the device's),
// --mapping automatic|group|item, tile knobs --rows --items --vec --cols (0: the mapping's).
// MAGELLANO_PROFILE=1 adds the device time per kernel of one forward + backward.
#include <cmath>
#include <random>

#include "bench.hpp"
#include "magellano/ops/ssd.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

struct Sizes {
  int64_t b, l, h, p, g, n;
};

struct HostScan {  // the plain loop: fp32, one thread, one (P, N) state per (b, head)
  Sizes s;
  std::vector<float> x, dt, bias, A_log, Bm, Cm, D;
  float run() const {
    std::vector<float> S(s.p * s.n), y(x.size());
    for (int64_t b = 0; b < s.b; ++b)
      for (int64_t h = 0; h < s.h; ++h) {
        const int64_t g = h / (s.h / s.g);
        const float A = -std::exp(A_log[h]);
        std::fill(S.begin(), S.end(), 0.f);
        for (int64_t t = 0; t < s.l; ++t) {
          const float raw = dt[(b * s.l + t) * s.h + h] + bias[h];
          const float step = raw <= 20.f ? std::log1p(std::exp(raw)) : raw, decay = std::exp(step * A);
          const float* Bt = &Bm[((b * s.l + t) * s.g + g) * s.n];
          const float* Ct = &Cm[((b * s.l + t) * s.g + g) * s.n];
          for (int64_t p = 0; p < s.p; ++p) {
            const int64_t i = ((b * s.l + t) * s.h + h) * s.p + p;
            const float dx = step * x[i];
            float* Sp = &S[p * s.n];
            float out = 0.f;
            for (int64_t n = 0; n < s.n; ++n) {
              Sp[n] = decay * Sp[n] + dx * Bt[n];
              out += Sp[n] * Ct[n];
            }
            y[i] = out + D[h] * x[i];
          }
        }
      }
    return y[0] + y.back();
  }
};

std::vector<float> rnd(int64_t n, std::mt19937& gen, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

ops::SsdMapping mapping_option(const Options& opts) {
  const std::string m = opts.str("mapping");
  if (m == "automatic") return ops::SsdMapping::automatic;
  if (m == "group") return ops::SsdMapping::group_per_chunk;
  if (m == "item") return ops::SsdMapping::item_per_chunk;
  throw Error("--mapping: unknown value '" + m + "'; use automatic, group or item.");
}

std::vector<Result> run_ssd(Context& ctx, const Peaks&, const Options& opts) {
  const int repeats = repeats_option(opts, 3);
  const Sizes s{integer_in(opts, "b", 1, 1 << 16), integer_in(opts, "l", 1, 1 << 24),
                integer_in(opts, "h", 1, 4096), integer_in(opts, "p", 1, 1024),
                integer_in(opts, "g", 1, 4096), integer_in(opts, "n", 1, 1024)};
  if (s.h % s.g) throw Error("--g: " + std::to_string(s.g) + " groups must divide --h " + std::to_string(s.h) + ".");
  ops::SsdOptions o;
  o.chunk = static_cast<int>(integer_in(opts, "chunk", 0, 4096));
  o.mapping = mapping_option(opts);
  o.tiles = {static_cast<int>(integer_in(opts, "rows", 0, 64)), static_cast<int>(integer_in(opts, "items", 0, 4096)),
             static_cast<int>(integer_in(opts, "vec", 0, 16)), static_cast<int>(integer_in(opts, "cols", 0, 1024))};
  o.backward_tiles = {static_cast<int>(integer_in(opts, "bwd-rows", 0, 64)),
                      static_cast<int>(integer_in(opts, "bwd-items", 0, 4096)),
                      static_cast<int>(integer_in(opts, "bwd-cols", 0, 1024))};
  const bool host = integer_in(opts, "host", 0, 1) == 1;

  std::mt19937 gen(1);
  // Mamba2's initial ranges: A = -exp(A_log) in [-16, -1], softplus(dt + dt_bias) in ~[0.001, 0.3].
  const HostScan hs{s, rnd(s.b * s.l * s.h * s.p, gen, -1, 1), rnd(s.b * s.l * s.h, gen, -1, 1),
                    rnd(s.h, gen, -6.9f, -2.3f), rnd(s.h, gen, 0, 2.77f), rnd(s.b * s.l * s.g * s.n, gen, -1, 1),
                    rnd(s.b * s.l * s.g * s.n, gen, -1, 1), rnd(s.h, gen, 0.5, 1.5)};
  auto up = [&](const std::vector<float>& v, Shape shape) {
    Tensor t = Tensor::from_host(ctx, shape, v);
    t.set_requires_grad(true);
    return t;
  };
  const Shape xs{s.b, s.l, s.h, s.p}, bs{s.b, s.l, s.g, s.n};
  Tensor x = up(hs.x, xs), dt = up(hs.dt, Shape{s.b, s.l, s.h}), bias = up(hs.bias, Shape{s.h}),
         A_log = up(hs.A_log, Shape{s.h}), Bm = up(hs.Bm, bs), Cm = up(hs.Cm, bs), D = up(hs.D, Shape{s.h});
  const Tensor dy = Tensor::from_host(ctx, xs, rnd(s.b * s.l * s.h * s.p, gen, -1, 1));
  const double s_fwd = median_seconds(ctx, repeats, [&] {
    autograd::NoGradScope no_grad;
    ops::ssd_scan(x, dt, bias, A_log, Bm, Cm, D, o);
  });
  const double s_all = median_seconds(ctx, repeats, [&] {
    for (Tensor* t : {&x, &dt, &bias, &A_log, &Bm, &Cm, &D}) t->zero_grad();
    autograd::backward(ops::ssd_scan(x, dt, bias, A_log, Bm, Cm, D, o), dy);
  });
  if (!std::isfinite(x.grad().to_host()[0])) throw Error("ssd benchmark: non-finite gradient");

  const int64_t chunk = std::min<int64_t>(o.chunk ? o.chunk : ops::ssd_default_chunk(ctx), s.l);
  const ops::SsdWork w = ops::ssd_scan_work(s.b, s.l, s.h, s.p, s.g, s.n, chunk);
  const nlohmann::json sizes = {{"B", s.b}, {"L", s.l}, {"H", s.h}, {"P", s.p}, {"G", s.g}, {"N", s.n},
                                {"chunk", chunk}, {"mapping", opts.str("mapping")}};
  // Each timing twice: GFLOP/s against the GEMM peak, and (`_bytes`) GB/s of the minimum bytes
  // against the copy peak.
  auto result = [&](const char* name, double seconds, double flops, double bytes, bool rate_is_bytes) {
    Result r;
    r.name = name;
    r.sizes = sizes;
    r.median_s = seconds;
    r.repeats = repeats;
    if (rate_is_bytes) r.gbps = bytes / seconds / 1e9;
    else r.gflops = flops / seconds / 1e9;
    r.extra = {{"flops", flops}, {"min_bytes", bytes}};
    return r;
  };
  Result fwd = result("ssd_fwd", s_fwd, w.fwd_flops, w.fwd_bytes, false);
  Result all = result("ssd_fwd_bwd", s_all, w.fwd_flops + w.bwd_flops, w.fwd_bytes + w.bwd_bytes, false);
  if (ctx.profiler().enabled()) {  // MAGELLANO_PROFILE=1: device time per kernel of one more fwd + bwd
    ctx.profiler().discard();
    for (Tensor* t : {&x, &dt, &bias, &A_log, &Bm, &Cm, &D}) t->zero_grad();
    autograd::backward(ops::ssd_scan(x, dt, bias, A_log, Bm, Cm, D, o), dy);
    nlohmann::json prof = nlohmann::json::array();
    for (const auto& e : ctx.profiler().report())
      prof.push_back({{"kernel", e.name}, {"calls", e.calls}, {"device_ms", e.seconds * 1e3}});
    all.extra["profile_one_step"] = prof;
  }
  std::vector<Result> out = {fwd, result("ssd_fwd_bytes", s_fwd, w.fwd_flops, w.fwd_bytes, true), all,
                             result("ssd_fwd_bwd_bytes", s_all, w.fwd_flops + w.bwd_flops,
                                    w.fwd_bytes + w.bwd_bytes, true)};
  if (host) {
    float sink = 0;
    Result h;
    h.name = "ssd_fwd";
    h.host = true;
    h.sizes = sizes;
    h.sizes.erase("mapping");
    h.sizes["chunk"] = nullptr;  // no chunks: a step-by-step loop
    h.repeats = 1;
    h.median_s = median_host_seconds(1, [&] { sink += hs.run(); });
    if (!std::isfinite(sink)) throw Error("ssd host loop: non-finite result");
    const double flops = 5.0 * s.b * s.l * s.h * s.p * s.n;
    h.gflops = flops / h.median_s / 1e9;
    h.extra = {{"flops", flops}, {"threads", 1}};
    out[0].extra["speedup_vs_host_loop"] = h.median_s / s_fwd;
    out.push_back(h);
  }
  return out;
}

RegisterBench reg{{"ssd", "Mamba2 SSD scan forward and forward + backward (GFLOP/s, GB/s); host loop",
                   {{"b", Key::integer, "8", "batch rows"},
                    {"l", Key::integer, "2048", "sequence length"},
                    {"h", Key::integer, "16", "heads"},
                    {"p", Key::integer, "64", "head width"},
                    {"g", Key::integer, "1", "groups of B and C (divides --h)"},
                    {"n", Key::integer, "64", "state size"},
                    {"chunk", Key::integer, "0", "steps per chunk (0: the device's default)"},
                    {"mapping", Key::text, "automatic", "automatic, group (GPUs) or item (CPUs)"},
                    {"rows", Key::integer, "0", "tile knob: rows per work-item (0: default)"},
                    {"items", Key::integer, "0", "tile knob: work-items per group (0: default)"},
                    {"vec", Key::integer, "0", "tile knob: vector width (0: default)"},
                    {"cols", Key::integer, "0", "tile knob: columns per staged tile (0: default)"},
                    {"bwd-rows", Key::integer, "0", "backward kernels' rows per work-item (0: --rows, else default)"},
                    {"bwd-items", Key::integer, "0", "backward kernels' work-items per group (0: as --items)"},
                    {"bwd-cols", Key::integer, "0", "backward kernels' columns per staged tile (0: as --cols)"},
                    {"host", Key::integer, "1", "0: skip the host loop"}},
                   run_ssd}};

}  // namespace
}  // namespace magellano::bench
