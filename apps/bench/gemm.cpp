// `bench gemm`: fp32 GEMM at sizes of one's choosing (the measurement behind every GFLOP/s
// percentage of peak); it also compares the GEMM implementations on one device
// (ops/gemm_tuning.hpp) and, on CPU devices, OpenBLAS SGEMM on the host's cores in the same run.

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "bench.hpp"
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

struct GemmCase {
  int64_t m, n, k;
  bool ta = false, tb = false;
  std::string op() const { return std::string(ta ? "t" : "n") + (tb ? "t" : "n"); }
};

// phase1 (dim 448, inner 896, dt_rank 28, MoE hidden 1280, vocabulary 50257) at T tokens
// (batch x 512): the forward GEMMs (x W^T: nt), input gradients (dY W: nn) and weight gradients
// (dY^T X: tn) of in_proj, out_proj, x_proj, dt_proj, one expert's w1 (T / 4 rows: top-2 of 8)
// and the LM head.
std::vector<GemmCase> phase1_cases(int64_t t) {
  const int64_t e = std::max<int64_t>(1, t / 4);
  return {{t, 1792, 448, false, true},  {t, 448, 1792},          {1792, 448, t, true, false},
          {t, 448, 896, false, true},   {t, 896, 448},           {448, 896, t, true, false},
          {t, 60, 896, false, true},    {t, 896, 28, false, true}, {e, 1280, 448, false, true},
          {e, 448, 1280},               {t, 50257, 448, false, true}, {t, 448, 50257},
          {50257, 448, t, true, false}};
}

std::vector<GemmCase> parse_cases(const std::string& list, int64_t tokens) {
  if (list == "phase1") return phase1_cases(tokens);
  std::vector<GemmCase> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char x1 = 0, x2 = 0, o1 = 'n', o2 = 'n', colon = 0;
    long long m = 0, n = 0, k = 0;
    std::istringstream in(item);
    const bool ok = static_cast<bool>(in >> m >> x1 >> n >> x2 >> k) && x1 == 'x' && x2 == 'x' &&
                    m > 0 && n > 0 && k > 0 && m <= 65536 * 4 && n <= 65536 * 4 && k <= 65536 * 4;
    if (ok && (in >> colon)) {
      if (colon != ':' || !(in >> o1 >> o2) || (o1 != 'n' && o1 != 't') || (o2 != 'n' && o2 != 't'))
        throw Error("--shapes: '" + item + "' is not MxNxK[:nn|nt|tn|tt].");
    } else if (!ok) {
      throw Error("--shapes: '" + item + "' is not MxNxK[:nn|nt|tn|tt] with positive sizes (or use phase1).");
    }
    out.push_back({m, n, k, o1 == 't', o2 == 't'});
  }
  return out;
}

// ops::gemm on g with whatever path and compute dtype are in effect; checks a few elements
// against float64 (within 1e-4 of sum |a b| for fp32; tf32 and bf16 operands are each rounded by
// up to 2^-11 and 2^-8 of themselves, so a product by twice that).
double device_gflops(Context& ctx, const GemmCase& g, int repeats) {
  const double tol = ctx.compute_dtype() == ComputeDType::bf16   ? std::ldexp(1.0, -7)
                     : ctx.compute_dtype() == ComputeDType::tf32 ? std::ldexp(1.0, -10)
                                                                 : 1e-4;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> ha(g.m * g.k), hb(g.k * g.n);
  for (auto& v : ha) v = u(rng);
  for (auto& v : hb) v = u(rng);
  Tensor a = Tensor::from_host(ctx, g.ta ? Shape{g.k, g.m} : Shape{g.m, g.k}, ha);
  Tensor b = Tensor::from_host(ctx, g.tb ? Shape{g.n, g.k} : Shape{g.k, g.n}, hb);
  Tensor c = Tensor::empty(ctx, Shape{g.m, g.n});
  const double s = median_seconds(ctx, repeats, [&] { ops::gemm(a, g.ta, b, g.tb, c); });
  const std::vector<float> host = c.to_host();
  for (int64_t probe = 0; probe < 4; ++probe) {
    const int64_t i = (probe * 7919) % g.m, j = (probe * 104729) % g.n;
    double ref = 0, mag = 0;
    for (int64_t kk = 0; kk < g.k; ++kk) {
      const double x = g.ta ? ha[kk * g.m + i] : ha[i * g.k + kk];
      const double y = g.tb ? hb[j * g.k + kk] : hb[kk * g.n + j];
      ref += x * y;
      mag += std::fabs(x * y);
    }
    if (!(std::fabs(host[i * g.n + j] - ref) <= tol * mag + 1e-6))
      throw Error("GEMM benchmark produced a wrong result");
  }
  return 2.0 * g.m * g.n * g.k / s / 1e9;
}

// --size N: one square size (default 512, 1024, 2048, 4096); --shapes MxNxK[:op],... or phase1
// (its training GEMMs at --tokens T, default 4096).
// --compute tf32,bf16: also time each product with that compute dtype (the matrix engine where the
// device has one; `matrix_engine` in the result says what ran).
// --paths: what to time besides the device's own choice, comma-separated from cpu_kernel,
// gpu_kernel, clblast (with the tuning file's parameters), clblast_database (CLBlast's own),
// openblas (default: openblas on CPU devices); `all` for every one (gpu_kernel only on GPUs).
std::vector<Result> run_gemm(Context& ctx, const Peaks&, const Options& opts) {
  std::vector<GemmCase> cases;
  if (opts.has("shapes")) {
    const int64_t tokens = opts.integer("tokens");
    if (tokens < 1 || tokens > 1 << 20) throw Error("--tokens must be between 1 and 1048576.");
    cases = parse_cases(opts.str("shapes"), tokens);
  } else {
    std::vector<int64_t> sizes = {512, 1024, 2048, 4096};
    if (opts.has("size")) sizes = {opts.integer("size")};
    for (int64_t n : sizes) {
      if (n < 1 || n > 65536) throw Error("--size must be between 1 and 65536.");
      cases.push_back({n, n, n});
    }
  }
  const bool is_cpu = ctx.device().type == "cpu";
  std::string paths_arg = opts.str("paths", is_cpu ? "openblas" : "");
  if (paths_arg == "all")
    paths_arg = is_cpu ? "cpu_kernel,clblast,clblast_database,openblas"
                       : "gpu_kernel,clblast,clblast_database";
  std::vector<std::string> paths;
  std::stringstream ps(paths_arg);
  for (std::string p; std::getline(ps, p, ',');) {
    if (p != "cpu_kernel" && p != "gpu_kernel" && p != "clblast" && p != "clblast_database" &&
        p != "openblas")
      throw Error("--paths: unknown '" + p +
                  "'; use cpu_kernel, gpu_kernel, clblast, clblast_database, openblas or all.");
    paths.push_back(p);
  }
  std::vector<ComputeDType> computes;
  std::stringstream cs(opts.str("compute", ""));
  for (std::string d; std::getline(cs, d, ',');) computes.push_back(ops::compute_dtype_from_string(d));
  const int repeats = repeats_option(opts, 3);
  const ops::GemmChoice choice = ops::gemm_choice(ctx);
  std::vector<Result> out;
  for (const auto& g : cases) {
    Result r;
    r.name = "gemm";
    r.sizes = {{"m", g.m}, {"n", g.n}, {"k", g.k}, {"op", g.op()}};
    r.repeats = repeats;
    r.gflops = device_gflops(ctx, g, repeats);
    r.median_s = 2.0 * g.m * g.n * g.k / r.gflops / 1e9;
    r.extra["path"] = ops::to_string(choice.path);
    r.extra["tuning"] = choice.source;
    for (ComputeDType d : computes) {
      ctx.set_compute_dtype(d);
      r.extra["compute_" + std::string(ops::to_string(d))] = ops::describe_compute_path(ctx);
      try {
        r.extra[std::string(ops::to_string(d)) + "_gflops"] = device_gflops(ctx, g, repeats);
      } catch (...) {
        ctx.set_compute_dtype(ComputeDType::fp32);
        throw;
      }
      ctx.set_compute_dtype(ComputeDType::fp32);
    }
    for (const auto& p : paths) {
      if (p == "openblas") {
        const auto gf = openblas_sgemm_gflops(g.m, g.n, g.k, g.ta, g.tb, repeats);
        if (!gf) {
          r.extra["openblas"] = "not found (install libopenblas0)";
          continue;
        }
        r.extra["openblas_gflops"] = *gf;
        r.extra["openblas_threads"] = openblas_threads();
        r.extra["pct_of_openblas"] = 100.0 * r.gflops / *gf;
        continue;
      }
      if (p == "clblast_database") ops::apply_clblast_parameters(ctx, ops::clblast_database_parameters(ctx));
      ops::force_gemm_path(p == "clblast_database" ? ops::GemmPath::clblast
                                                   : ops::gemm_path_from_string(p));
      try {
        r.extra[p + "_gflops"] = device_gflops(ctx, g, repeats);
      } catch (...) {
        ops::force_gemm_path(std::nullopt);
        if (p == "clblast_database") ops::apply_clblast_parameters(ctx, choice.clblast);
        throw;
      }
      ops::force_gemm_path(std::nullopt);
      if (p == "clblast_database") {  // back to the tuned set (database values where it has none)
        nlohmann::json restore = ops::clblast_database_parameters(ctx);
        for (const auto& [k, v] : choice.clblast.items()) restore[k] = v;
        ops::apply_clblast_parameters(ctx, restore);
      }
    }
    out.push_back(r);
  }
  return out;
}

RegisterBench reg{{"gemm", "fp32 GEMM: square sizes or --shapes, --paths to compare (GFLOP/s)",
                   {{"size", Key::integer, "", "one square size N (default: 512, 1024, 2048 and 4096)"},
                    {"shapes", Key::text, "", "MxNxK[:nn|nt|tn|tt],... or phase1 (its training GEMMs at --tokens)"},
                    {"tokens", Key::integer, "4096", "tokens T for --shapes phase1"},
                    {"paths", Key::text, "",
                     "also time these: cpu_kernel, gpu_kernel, clblast, clblast_database, openblas, or all "
                     "(default: openblas on CPU devices)"},
                    {"compute", Key::text, "", "also time with these compute dtypes: tf32, bf16 (comma-separated)"}},
                   run_gemm}};

}  // namespace
}  // namespace magellano::bench
