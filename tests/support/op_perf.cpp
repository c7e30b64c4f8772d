#include "op_perf.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>

#include "magellano/ops/mapping.hpp"
#include "magellano/ops/peaks.hpp"
#include "op_case.hpp"

namespace mgtest {
namespace {

using magellano::Context;

constexpr int64_t kPeakGemm = 4096;  // as `magellano bench`'s default --peak-size
constexpr int64_t kPeakCopyMib = 256;

struct Peaks {
  double gbps = 0, gflops = 0;
};

struct Timing {
  double median_s = 0;
  int repeats = 0;
};

// One run compiles kernels and fills the buffer pool; a second, timed, picks the repeats.
Timing time_runs(Context& ctx, const std::function<void()>& run) {
  run();
  ctx.finish();
  const auto t0 = std::chrono::steady_clock::now();
  run();
  ctx.finish();
  const double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int repeats = static_cast<int>(std::clamp(0.5 / std::max(once, 1e-6), 5.0, 50.0));
  return {magellano::ops::median_seconds(ctx, repeats, run, 0), repeats};
}

// One measured result, rated against the peak that bounds it.
struct Rated {
  double rate = 0, pct = 0;
  bool compute = false;  // GFLOP/s against the GEMM peak, else GB/s against the copy peak
};

Rated rate(double bytes, double flops, double seconds, const Peaks& p) {
  Rated r;
  r.compute = flops > 0 && flops / p.gflops > bytes / p.gbps;
  r.rate = (r.compute ? flops : bytes) / seconds / 1e9;
  r.pct = 100.0 * r.rate / (r.compute ? p.gflops : p.gbps);
  return r;
}

std::string today() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

std::string sizes_text(const nlohmann::json& sizes) {
  std::string s;
  for (auto& [k, v] : sizes.items())
    s += (s.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

nlohmann::json to_json(const std::string& name, const Context& ctx, const OpCase& c, const Timing& t,
                       double bytes, double flops, const Rated& r, const Peaks& p) {
  nlohmann::json j = {{"name", name}, {"device", ctx.device().name}, {"device_type", ctx.device().type},
                      {"driver", ctx.device().driver_version}, {"date", today()}, {"sizes", c.sizes},
                      {"median_s", t.median_s}, {"repeats", t.repeats}};
  if (r.compute) {
    j["gflops"] = r.rate;
    j["peak"] = {{"kind", "fp32 gemm"}, {"gflops", p.gflops}, {"size", kPeakGemm}};
  } else {
    j["gbps"] = r.rate;
    j["peak"] = {{"kind", "copy bandwidth"}, {"gbps", p.gbps}};
  }
  j["pct_of_peak"] = r.pct;
  j["extra"] = {{"bytes", bytes}, {"flops", flops}, {"source", "tests/ops (MAGELLANO_TEST_PERF=1)"},
                {"kernel_mapping", magellano::ops::to_string(magellano::ops::kernel_mapping(ctx))}};
  return j;
}

std::string cell(const Timing& t, const Rated& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%9.3f ms %9.2f %-6s %5.1f%%", t.median_s * 1e3, r.rate,
                r.compute ? "GFLOP/s" : "GB/s", r.pct);
  return buf;
}

}  // namespace

void run_op_perf(Context& ctx, std::ostream& table, std::ostream* json, const std::set<std::string>& only) {
  ctx.set_poison_allocations(false);  // test_ctx() NaN-fills new buffers: a test aid, not a cost
  Peaks peaks;
  peaks.gbps = magellano::ops::measure_copy(ctx, kPeakCopyMib, 3).gbps;
  peaks.gflops = magellano::ops::measure_gemm(ctx, kPeakGemm, kPeakGemm, kPeakGemm, 3).gflops;
  char head[512];
  std::snprintf(head, sizeof head,
                "device: %s, driver %s, kernel mapping %s\npeaks: copy %.1f GB/s, fp32 GEMM %.1f GFLOP/s (%lld^3)\n"
                "%-18s %-38s %-38s %s\n",
                ctx.device().name.c_str(), ctx.device().driver_version.c_str(),
                magellano::ops::to_string(magellano::ops::kernel_mapping(ctx)), peaks.gbps, peaks.gflops,
                (long long)kPeakGemm, "op", "forward", "forward + backward", "sizes");
  table << head;

  for (const auto& op : op_registry()) {
    if (!only.empty() && !only.count(op.name)) continue;
    const OpCase c = op.perf.build();
    std::vector<Tensor> dev;
    bool any_grad = false;
    for (const auto& in : c.inputs) {
      dev.push_back(upload_input(in));
      any_grad |= in.differentiable && in.dtype != DType::i32;
    }
    const Timing fwd = time_runs(ctx, [&] {
      magellano::autograd::NoGradScope no_grad;
      c.device(dev);
    });
    const Rated fr = rate(c.cost.fwd_bytes, c.cost.fwd_flops, fwd.median_s, peaks);
    std::string row = cell(fwd, fr), both = "-";
    if (json) *json << to_json(op.name + " fwd", ctx, c, fwd, c.cost.fwd_bytes, c.cost.fwd_flops, fr, peaks).dump() << "\n";
    if (any_grad) {
      Tensor dout;
      const Timing fb = time_runs(ctx, [&] {
        for (auto& t : dev)
          if (t.requires_grad()) t.zero_grad();
        Tensor out = c.device(dev);
        if (!dout.defined()) dout = upload(out.shape(), randn(out.numel(), 0xD0));
        magellano::autograd::backward(out, dout);
      });
      const double bytes = c.cost.fwd_bytes + c.cost.bwd_bytes, flops = c.cost.fwd_flops + c.cost.bwd_flops;
      const Rated br = rate(bytes, flops, fb.median_s, peaks);
      both = cell(fb, br);
      if (json) *json << to_json(op.name + " fwd+bwd", ctx, c, fb, bytes, flops, br, peaks).dump() << "\n";
    }
    char line[512];
    std::snprintf(line, sizeof line, "%-18s %-38s %-38s %s\n", op.name.c_str(), row.c_str(), both.c_str(),
                  sizes_text(c.sizes).c_str());
    table << line << std::flush;
    if (ctx.profiler().enabled()) {  // MAGELLANO_PROFILE=1: device time per kernel of one fwd + bwd
      ctx.profiler().discard();
      for (auto& t : dev)
        if (t.requires_grad()) t.zero_grad();
      Tensor out = c.device(dev);
      if (any_grad) magellano::autograd::backward(out, upload(out.shape(), randn(out.numel(), 0xD0)));
      table << ctx.profiler().report_table() << std::flush;
    }
  }
  ctx.set_poison_allocations(true);
}

}  // namespace mgtest
