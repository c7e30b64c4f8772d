// magellano tune-gemm [--device D] [--fraction F] [--size N] [--shapes LIST] [--out FILE]
// Tunes fp32 GEMM for one device and writes its tuning file (format: ops/gemm_tuning.hpp):
//  1. times ops::gemm through CLBlast with its database parameters at the shapes;
//  2. runs CLBlast's tuners (clblast::TuneXgemm, TuneXgemmDirect, TuneCopy, TunePad,
//     TuneTranspose, TunePadtranspose; random search over a fraction F of each space), applies
//     the result with OverrideParameters and times the shapes again; keeps it only if faster;
//  3. on CPU devices, times cl/gemm_cpu.cl over a few (MR, MBLOCK, KC) settings; on other
//     devices (work-groups of 256 allowed), times cl/gemm_gpu.cl with each (BK, DB) and keeps
//     the fastest (geometric mean over the shapes);
//  4. picks the fastest path (geometric mean over the shapes) and writes the JSON.
#include <algorithm>
#include <boost/program_options.hpp>
#include <clblast.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>

#include "command.hpp"
#include "options.hpp"
#include "magellano/io/atomic_file.hpp"
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

struct GemmCase {
  int64_t m, n, k;
  bool ta = false, tb = false;
  std::string str() const {
    return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
           (ta || tb ? std::string(":") + (ta ? "t" : "n") + (tb ? "t" : "n") : "");
  }
};

// "MxNxK[:nn|nt|tn|tt]" comma-separated.
std::vector<GemmCase> parse_shapes(const std::string& list) {
  std::vector<GemmCase> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    GemmCase c;
    std::string dims = item, ops;
    if (auto colon = item.find(':'); colon != std::string::npos) {
      dims = item.substr(0, colon);
      ops = item.substr(colon + 1);
    }
    char x1 = 0, x2 = 0, extra = 0;
    long long m = 0, n = 0, k = 0;
    std::istringstream d(dims);
    const bool ok = static_cast<bool>(d >> m >> x1 >> n >> x2 >> k) && x1 == 'x' && x2 == 'x' &&
                    !(d >> extra) && m > 0 && n > 0 && k > 0 &&
                    (ops.empty() || (ops.size() == 2 && (ops[0] == 'n' || ops[0] == 't') &&
                                     (ops[1] == 'n' || ops[1] == 't')));
    if (!ok)
      throw Error("--shapes: '" + item + "' is not MxNxK[:nn|nt|tn|tt] with positive sizes, e.g. 4096x1792x448:nt.");
    c.m = m, c.n = n, c.k = k;
    c.ta = !ops.empty() && ops[0] == 't';
    c.tb = !ops.empty() && ops[1] == 't';
    out.push_back(c);
  }
  if (out.empty()) throw Error("--shapes: give at least one MxNxK.");
  return out;
}

struct Operands {
  Tensor a, b, c;
  std::vector<float> ha, hb;
};

Operands make_operands(Context& ctx, const GemmCase& g) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Operands o;
  o.ha.resize(g.m * g.k);
  o.hb.resize(g.k * g.n);
  for (auto& v : o.ha) v = u(rng);
  for (auto& v : o.hb) v = u(rng);
  o.a = Tensor::from_host(ctx, g.ta ? Shape{g.k, g.m} : Shape{g.m, g.k}, o.ha);
  o.b = Tensor::from_host(ctx, g.tb ? Shape{g.n, g.k} : Shape{g.k, g.n}, o.hb);
  o.c = Tensor::empty(ctx, Shape{g.m, g.n});
  return o;
}

// GFLOP/s of ops::gemm on g (median of `repeats` after a warm-up); 0 when the result is wrong
// (a parameter set that computes garbage must never win).
double time_gemm(Context& ctx, const GemmCase& g, Operands& o, int repeats) {
  auto run = [&] { ops::gemm(o.a, g.ta, o.b, g.tb, o.c, 1.0f, 0.0f); };
  try {
    run();
    ctx.finish();
  } catch (const Error& e) {
    std::fprintf(stderr, "  %s failed: %s\n", g.str().c_str(), e.what());
    return 0.0;
  }
  const std::vector<float> c = o.c.to_host();
  for (int64_t probe = 0; probe < 8; ++probe) {
    const int64_t i = (probe * 7919) % g.m, j = (probe * 104729) % g.n;
    double ref = 0, mag = 0;
    for (int64_t kk = 0; kk < g.k; ++kk) {
      const double x = g.ta ? o.ha[kk * g.m + i] : o.ha[i * g.k + kk];
      const double y = g.tb ? o.hb[j * g.k + kk] : o.hb[kk * g.n + j];
      ref += x * y;
      mag += std::fabs(x * y);
    }
    if (!(std::fabs(c[i * g.n + j] - ref) <= 1e-4 * mag + 1e-6)) {
      std::fprintf(stderr, "  %s: wrong result, rejected\n", g.str().c_str());
      return 0.0;
    }
  }
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ctx.finish();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return 2.0 * g.m * g.n * g.k / t[t.size() / 2] / 1e9;
}

double geomean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::log(std::max(x, 1e-9));
  return std::exp(s / v.size());
}

std::vector<double> time_all(Context& ctx, const std::vector<GemmCase>& cases,
                             std::vector<Operands>& ops_, int repeats, const char* label) {
  std::vector<double> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    out.push_back(time_gemm(ctx, cases[i], ops_[i], repeats));
    std::printf("  %-14s %-20s %9.1f GFLOP/s\n", label, cases[i].str().c_str(), out.back());
    std::fflush(stdout);
  }
  return out;
}

using TuneFn = clblast::StatusCode (*)(cl_command_queue*, size_t, size_t, size_t, double,
                                      std::unordered_map<std::string, size_t>&);

// Runs one CLBlast tuner; returns its parameters, or null when it failed.
nlohmann::json run_tuner(Context& ctx, const std::string& kernel, size_t m, size_t n, size_t k,
                         double fraction) {
  std::unordered_map<std::string, size_t> p;
  clblast::StatusCode st;
  cl_command_queue* q = ctx.queue_ptr();
  if (kernel == "Xgemm") st = clblast::TuneXgemm<float>(q, m, n, k, fraction, p);
  else if (kernel == "XgemmDirect") st = clblast::TuneXgemmDirect<float>(q, m, n, k, fraction, p);
  else if (kernel == "Copy") st = clblast::TuneCopy<float>(q, m, n, fraction, p);
  else if (kernel == "Pad") st = clblast::TunePad<float>(q, m, n, fraction, p);
  else if (kernel == "Transpose") st = clblast::TuneTranspose<float>(q, m, n, fraction, p);
  else st = clblast::TunePadtranspose<float>(q, m, n, fraction, p);
  if (st != clblast::StatusCode::kSuccess || p.empty()) {
    std::printf("  %s: tuner failed (CLBlast status %d), keeping the database's values\n",
                kernel.c_str(), static_cast<int>(st));
    return nullptr;
  }
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, v] : p) j[key] = v;
  std::printf("  %s: %s\n", kernel.c_str(), j.dump().c_str());
  std::fflush(stdout);
  return j;
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%F", std::gmtime(&t));
  return buf;
}

// What the command line asks for; size, out and shapes get the device's defaults in
// fill_device_defaults.
struct TuneRequest {
  std::string device, out, shapes;
  double fraction = 0.01;
  int64_t size = 0;
  int repeats = 3;
  bool skip_clblast = false, cpu_kernel_anyway = false;
};

// Parses and checks the command line; nullopt after --help.
std::optional<TuneRequest> parse_request(int argc, char** argv) {
  TuneRequest req;
  po::options_description opts(
      "magellano tune-gemm: tune fp32 GEMM for a device and write its tuning file\n"
      "(configs/tuning/<device>.json by default; rebuild to embed it, or point\n"
      "MAGELLANO_GEMM_TUNING at it). Options");
  cli::add_common_options(opts, cli::kDevice);
  cli::add_number_option(opts, "fraction", &req.fraction, {0, 1, true},
                         "share of each CLBlast tuner's search space to try");
  cli::add_integer_option(opts, "size", &req.size, 16, 16384,
                          "square size for the CLBlast Xgemm tuner (default 1024 on CPUs, 2048 elsewhere)", false);
  cli::add_integer_option(opts, "repeats", &req.repeats, 1, 100, "timed runs per shape (median)");
  opts.add_options()(
      "shapes", po::value(&req.shapes),
      "shapes to compare the paths on: MxNxK[:nn|nt|tn],... (default: the square size and "
      "phase1's training GEMMs at 4096 tokens)")(
      "skip-clblast", po::bool_switch(&req.skip_clblast), "do not run CLBlast's tuners")(
      "cpu-kernel", po::bool_switch(&req.cpu_kernel_anyway),
      "also time cl/gemm_cpu.cl on a non-CPU device")(
      "out", po::value(&req.out), "output file (default configs/tuning/<device-slug>.json)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return std::nullopt;
  req.device = cli::device_option(vm);
  return req;
}

// The defaults that depend on the device: the square size, the output file and the shapes.
void fill_device_defaults(TuneRequest& req, const DeviceInfo& dev) {
  if (req.size == 0) req.size = dev.type == "cpu" ? 1024 : 2048;
  if (req.out.empty()) req.out = "configs/tuning/" + ops::device_slug(dev.name) + ".json";
  if (req.shapes.empty()) {
    const std::string s = std::to_string(req.size);
    req.shapes = s + "x" + s + "x" + s + ",4096x1792x448:nt,4096x448x896:nt,4096x448x1792,1792x448x4096:tn";
  }
}

// Fails before hours of tuning, not after, when the output file cannot be written.
void check_writable(const std::string& out) {
  {
    std::ofstream probe(out + ".tmp");
    if (!probe) throw Error("cannot write " + out + ": create its folder or choose another --out.");
  }
  std::remove((out + ".tmp").c_str());
}

// The shapes the paths are compared on, with their operands and timed runs per shape.
struct Shapes {
  std::vector<GemmCase> cases;
  std::vector<Operands> operands;
  int repeats;
  // GFLOP/s per shape of the GEMM path in effect, each printed under `label`.
  std::vector<double> time(Context& ctx, const char* label) {
    return time_all(ctx, cases, operands, repeats, label);
  }
};

// Steps 1 and 2: CLBlast with its database parameters, then with its tuners' (kept only when
// faster). Leaves the kept set applied.
struct ClblastResult {
  std::vector<double> t_db, t_tuned;       // GFLOP/s per shape (t_tuned empty with --skip-clblast)
  nlohmann::json tuned = nlohmann::json::object();  // every set the tuners found and CLBlast accepted
  bool keep_tuned = false;
  double best = 0;  // geometric mean of the kept set
  nlohmann::json kept() const { return keep_tuned ? tuned : nlohmann::json::object(); }
};

ClblastResult tune_clblast(Context& ctx, Shapes& shapes, const TuneRequest& req) {
  ClblastResult r;
  // 1. CLBlast with its own database (any tuning file's overrides undone).
  ops::force_gemm_path(ops::GemmPath::clblast);
  const nlohmann::json database = ops::clblast_database_parameters(ctx);
  ops::apply_clblast_parameters(ctx, database);
  std::printf("CLBlast, database parameters:\n");
  r.t_db = shapes.time(ctx, "clblast-db");

  // 2. CLBlast's tuners.
  if (!req.skip_clblast) {
    std::printf("CLBlast tuners (this compiles many kernels):\n");
    std::fflush(stdout);
    const size_t s = static_cast<size_t>(req.size), small = static_cast<size_t>(std::max<int64_t>(64, req.size / 4));
    for (const auto& kernel : ops::clblast_gemm_kernels()) {
      const size_t ts = kernel == "XgemmDirect" ? small : s;
      nlohmann::json p = run_tuner(ctx, kernel, ts, ts, ts, req.fraction);
      if (p.is_null()) continue;
      try {  // CLBlast must accept the set (same parameter names as its database entry)
        ops::apply_clblast_parameters(ctx, {{kernel, p}});
        r.tuned[kernel] = p;
      } catch (const Error& e) {
        std::printf("  %s: CLBlast refuses the tuned set (%s); keeping the database's values\n",
                    kernel.c_str(), e.what());
      }
    }
    nlohmann::json merged = database;
    for (const auto& [k, v] : r.tuned.items()) merged[k] = v;
    ops::apply_clblast_parameters(ctx, merged);
    std::printf("CLBlast, tuned parameters:\n");
    r.t_tuned = shapes.time(ctx, "clblast-tuned");
  }
  r.keep_tuned = !r.t_tuned.empty() && geomean(r.t_tuned) > geomean(r.t_db);
  r.best = r.keep_tuned ? geomean(r.t_tuned) : geomean(r.t_db);
  ops::apply_clblast_parameters(ctx, r.keep_tuned ? r.tuned : database);
  return r;
}

// Step 3: cl/gemm_cpu.cl over a few (MR, MBLOCK, KC) settings, chosen on the first (square)
// shape; then every shape with the best.
std::vector<double> tune_cpu_kernel(Context& ctx, Shapes& shapes, ops::CpuGemmParams& best_cpu) {
  std::printf("cl/gemm_cpu.cl:\n");
  ops::force_gemm_path(ops::GemmPath::cpu_kernel);
  const std::vector<ops::CpuGemmParams> grid = {{6, 16, 0}, {6, 32, 0}, {6, 8, 0},
                                                {6, 16, 256}, {4, 16, 0}, {6, 64, 512}};
  double best = -1;
  for (const auto& p : grid) {
    ops::force_cpu_gemm_params(p);
    const double g = time_gemm(ctx, shapes.cases[0], shapes.operands[0], shapes.repeats);
    std::printf("  MR %d MBLOCK %3d KC %4d  %-20s %9.1f GFLOP/s\n", p.mr, p.mblock, p.kc,
                shapes.cases[0].str().c_str(), g);
    std::fflush(stdout);
    if (g > best) best = g, best_cpu = p;
  }
  ops::force_cpu_gemm_params(best_cpu);
  const std::vector<double> t = shapes.time(ctx, "cpu_kernel");
  ops::force_cpu_gemm_params(std::nullopt);
  return t;
}

// Step 4: cl/gemm_gpu.cl with each (BK, DB); the best by geometric mean over the shapes.
std::vector<double> tune_gpu_kernel(Context& ctx, Shapes& shapes, ops::GpuGemmParams& best_gpu) {
  std::printf("cl/gemm_gpu.cl:\n");
  ops::force_gemm_path(ops::GemmPath::gpu_kernel);
  std::vector<double> best;
  for (const ops::GpuGemmParams p : {ops::GpuGemmParams{16, true}, ops::GpuGemmParams{8, true},
                                     ops::GpuGemmParams{16, false}, ops::GpuGemmParams{8, false}}) {
    ops::force_gpu_gemm_params(p);
    const std::string label = "BK " + std::to_string(p.bk) + " DB " + std::to_string(int(p.db));
    std::vector<double> t = shapes.time(ctx, label.c_str());
    if (best.empty() || geomean(t) > geomean(best)) best = t, best_gpu = p;
  }
  ops::force_gpu_gemm_params(std::nullopt);
  return best;
}

// Everything measured, and the path chosen from it.
struct Tuning {
  ClblastResult clblast;
  std::vector<double> t_cpu, t_gpu;  // empty where the kernel was not timed
  ops::CpuGemmParams best_cpu;
  ops::GpuGemmParams best_gpu;
  std::string path = "clblast";  // the fastest by geometric mean over the shapes
};

Tuning tune(Context& ctx, Shapes& shapes, const TuneRequest& req) {
  const DeviceInfo& dev = ctx.device();
  const bool is_cpu = dev.type == "cpu";
  Tuning t;
  t.clblast = tune_clblast(ctx, shapes, req);
  if (is_cpu || req.cpu_kernel_anyway) t.t_cpu = tune_cpu_kernel(ctx, shapes, t.best_cpu);
  if (!is_cpu && dev.max_work_group_size >= 256) t.t_gpu = tune_gpu_kernel(ctx, shapes, t.best_gpu);
  ops::force_gemm_path(std::nullopt);
  double best = t.clblast.best;
  if (!t.t_cpu.empty() && geomean(t.t_cpu) > best) t.path = "cpu_kernel", best = geomean(t.t_cpu);
  if (!t.t_gpu.empty() && geomean(t.t_gpu) > best) t.path = "gpu_kernel", best = geomean(t.t_gpu);
  return t;
}

// The tuning file (format: ops/gemm_tuning.hpp).
nlohmann::json tuning_file(const Tuning& t, const DeviceInfo& dev, const std::vector<GemmCase>& cases,
                           const TuneRequest& req) {
  nlohmann::json doc;
  doc["format"] = "magellano-gemm-tuning/1";
  doc["device"] = dev.name;
  doc["driver"] = dev.driver_version;
  doc["platform"] = dev.platform_name + " " + dev.platform_version;
  doc["date"] = today();
  doc["gemm_path"] = t.path;
  doc["cpu_kernel"] = {{"MR", t.best_cpu.mr}, {"MBLOCK", t.best_cpu.mblock}, {"KC", t.best_cpu.kc}};
  doc["gpu_kernel"] = {{"BK", t.best_gpu.bk}, {"DB", int(t.best_gpu.db)}};
  doc["clblast"] = t.clblast.kept();
  doc["measured"] = nlohmann::json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    nlohmann::json m = {{"shape", cases[i].str()}, {"clblast_database_gflops", t.clblast.t_db[i]}};
    if (!t.clblast.t_tuned.empty()) m["clblast_tuned_gflops"] = t.clblast.t_tuned[i];
    if (!t.t_cpu.empty()) m["cpu_kernel_gflops"] = t.t_cpu[i];
    if (!t.t_gpu.empty()) m["gpu_kernel_gflops"] = t.t_gpu[i];
    doc["measured"].push_back(m);
  }
  doc["tuner"] = {{"fraction", req.fraction}, {"size", req.size}, {"repeats", req.repeats},
                  {"clblast_tuned_kept", t.clblast.keep_tuned}, {"clblast_tuned_raw", t.clblast.tuned}};
  return doc;
}

void print_summary(const Tuning& t, const std::string& out) {
  std::printf("gemm path: %s (geometric mean: clblast %.1f%s GFLOP/s", t.path.c_str(), t.clblast.best,
              t.clblast.keep_tuned ? " tuned" : " database");
  if (!t.t_cpu.empty()) std::printf(", cpu_kernel %.1f GFLOP/s", geomean(t.t_cpu));
  if (!t.t_gpu.empty()) std::printf(", gpu_kernel %.1f GFLOP/s", geomean(t.t_gpu));
  std::printf(")\nwrote %s\n", out.c_str());
}

int run_tune_gemm(int argc, char** argv) {
  auto req = parse_request(argc, argv);
  if (!req) return 0;
  auto ctx = Context::create(req->device);
  const DeviceInfo& dev = ctx->device();
  fill_device_defaults(*req, dev);
  Shapes shapes{parse_shapes(req->shapes), {}, req->repeats};
  check_writable(req->out);
  std::printf("tune-gemm: %s (%s, driver %s), fraction %g\n", dev.name.c_str(), dev.platform_name.c_str(),
              dev.driver_version.c_str(), req->fraction);
  for (const auto& c : shapes.cases) shapes.operands.push_back(make_operands(*ctx, c));

  const Tuning t = tune(*ctx, shapes, *req);
  io::write_file_atomically(req->out, tuning_file(t, dev, shapes.cases, *req).dump(2) + "\n");
  print_summary(t, req->out);
  return 0;
}

cli::RegisterCommand reg{{"tune-gemm", "Tune fp32 GEMM for a device and write its tuning file", run_tune_gemm}};

}  // namespace
