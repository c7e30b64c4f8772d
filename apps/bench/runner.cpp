// magellano bench NAME [--device D] [--json] [--repeats R] [--peak-size N] [--KEY VALUE]...
// Runs one benchmark of the suite (or `all`, or `list`s them). Every result names the device
// and driver, the sizes, the median of the timed runs after warm-up, GFLOP/s or GB/s, and that
// as a percentage of the device's own peak measured at the start of the same run.
//
// The options are parsed like every command's (apps/options.hpp): the common --help, --device
// and --json, the run's own keys (kRunKeys) and the keys each chosen benchmark declares.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>

#include "../command.hpp"
#include "../options.hpp"
#include "bench.hpp"
#include "report.hpp"

namespace po = boost::program_options;
using namespace magellano;
using bench::Key;

namespace {

const char* kUsage =
    "usage: magellano bench NAME [--device D] [--json] [--repeats R] [--peak-size N] [--KEY VALUE]...\n"
    "       magellano bench list      (the benchmarks and their options)\n"
    "       magellano bench NAME --help\n"
    "NAME is a benchmark or `all`. The device's peaks (copy bandwidth, fp32 GEMM at --peak-size,\n"
    "default 4096) are measured first; each result reports its share of them.\n";

// Keys of the run itself. --repeats also goes to every benchmark (bench::repeats_option).
const Key kRepeats = {"repeats", Key::integer, "", "timed runs per result, median reported (default: the benchmark's)"};
const std::vector<Key> kRunKeys = {
    kRepeats,
    {"peak-size", Key::integer, "4096", "N of the fp32 GEMM peak, N x N x N"},
    {"peak-repeats", Key::integer, "3", "timed runs of each peak measurement"},
    {"copy-mib", Key::integer, "256", "MiB copied by the copy-bandwidth peak"},
};

std::vector<bench::Bench> sorted_registry() {
  auto all = bench::registry();
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return all;
}

void print_list() {
  for (const auto& b : sorted_registry()) {
    std::string keys;
    for (const auto& k : b.keys) keys += " [--" + k.name + " ...]";
    std::printf("  %-12s %s%s\n", b.name.c_str(), b.summary.c_str(), keys.c_str());
  }
}

// Adds each key not in `added` yet (a key several benchmarks share appears once, under the first).
void add_keys(po::options_description& desc, const std::vector<Key>& keys, std::set<std::string>& added) {
  for (const Key& k : keys) {
    if (!added.insert(k.name).second) continue;
    const char* value_name = k.kind == Key::integer ? "N" : k.kind == Key::number ? "X" : "TEXT";
    const std::string help = k.help + (k.fallback.empty() ? "" : " (default " + k.fallback + ")");
    desc.add_options()(k.name.c_str(), po::value<std::string>()->value_name(value_name), help.c_str());
  }
}

// The options of `bench NAME` for the chosen benchmarks.
po::options_description bench_options(const std::vector<bench::Bench>& chosen) {
  const std::string shared_note =
      chosen.size() > 1 ? "A key that several benchmarks take is listed once, under the first; "
                          "`magellano bench NAME --help` gives each one's meaning.\n"
                        : "";
  po::options_description desc(std::string(kUsage) + shared_note + "\nOptions");
  cli::add_common_options(desc, cli::kDevice | cli::kJson);
  std::set<std::string> added;
  add_keys(desc, kRunKeys, added);
  for (const auto& b : chosen) {
    po::options_description mine("bench " + b.name + ": " + b.summary);
    add_keys(mine, b.keys, added);
    if (!mine.options().empty()) desc.add(mine);
  }
  return desc;
}

// The --KEY VALUE pairs given, as typed (the common --device and --json left out).
std::map<std::string, std::string> given_keys(const po::variables_map& vm) {
  std::map<std::string, std::string> given;
  for (const auto& [key, value] : vm)
    if (key != "device" && value.value().type() == typeid(std::string)) given[key] = value.as<std::string>();
  return given;
}

// A benchmark and its options (its keys and --repeats).
struct Planned {
  bench::Bench bench;
  bench::Options opts;
};

// Measures the device's peaks (copy bandwidth, fp32 GEMM) at the run's sizes.
bench::Peaks measure_peaks(Context& ctx, const bench::Options& run, bool as_json) {
  bench::Peaks peaks;
  peaks.peak_size = bench::integer_in(run, "peak-size", 16, 65536);
  const int peak_repeats = static_cast<int>(bench::integer_in(run, "peak-repeats", 1, 1000));
  const int64_t copy_mib = bench::integer_in(run, "copy-mib", 1, 1 << 20);
  if (!as_json)
    std::printf("device: %s (%s), driver %s\nmeasuring peaks (copy bandwidth, fp32 GEMM at %lld)...\n",
                ctx.device().name.c_str(), ctx.device().id().c_str(), ctx.device().driver_version.c_str(),
                (long long)peaks.peak_size);
  peaks.copy_gbps = bench::measure_copy(ctx, copy_mib, peak_repeats).gbps;
  peaks.gemm_gflops = bench::measure_gemm(ctx, peaks.peak_size, peaks.peak_size, peaks.peak_size, peak_repeats).gflops;
  if (!as_json)
    std::printf("peaks: copy %.1f GB/s, fp32 GEMM %.1f GFLOP/s\n\n", peaks.copy_gbps, peaks.gemm_gflops);
  return peaks;
}

// Runs each planned benchmark and prints its results. `all` goes on past a benchmark that fails
// (its error is printed) and returns 1; a single benchmark's error propagates.
int run_planned(Context& ctx, const bench::Peaks& peaks, const std::vector<Planned>& plan, bool as_json) {
  int status = 0;
  for (const auto& [b, opts] : plan) {
    std::vector<bench::Result> results;
    try {
      results = b.run(ctx, peaks, opts);
    } catch (const std::exception& e) {
      if (plan.size() == 1) throw;
      std::cerr << "error: bench " << b.name << ": " << e.what() << "\n";
      status = 1;
      continue;
    }
    for (const auto& r : results) bench::print_result(r, ctx, peaks, as_json);
  }
  return status;
}

int run_bench(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  if (name == "list") {
    print_list();
    return 0;
  }
  std::vector<bench::Bench> chosen;
  for (const auto& b : sorted_registry())
    if (name == "all" || b.name == name) chosen.push_back(b);
  if (chosen.empty()) {
    std::cerr << "error: no benchmark named '" << name << "'. Run `magellano bench list` to see them.\n";
    return 2;
  }

  // Parse: unknown keys and missing values are named here, before any device work.
  const po::options_description desc = bench_options(chosen);
  po::variables_map vm;
  try {
    if (!cli::parse_options(desc, argc - 1, argv + 1, vm)) return 0;
  } catch (const po::unknown_option& e) {
    std::cerr << "error: unknown option " << e.get_option_name() << " for `bench " << name
              << "`. Run `magellano bench list` to see each benchmark's options.\n";
    return 2;
  } catch (const po::invalid_command_line_syntax& e) {
    if (e.kind() != po::invalid_command_line_syntax::missing_parameter) throw;
    std::cerr << "error: " << e.get_option_name() << " needs a value.\n";
    return 2;
  }
  // Validate: every value against its key's kind, for the run and each benchmark.
  const auto given = given_keys(vm);
  const bench::Options run(kRunKeys, given);
  std::vector<Planned> plan;
  for (const auto& b : chosen) {
    std::vector<Key> keys = b.keys;
    keys.push_back(kRepeats);
    plan.push_back({b, bench::Options(keys, given)});
  }

  auto ctx = Context::create(cli::device_option(vm));
  const bool as_json = cli::json_option(vm);
  const bench::Peaks peaks = measure_peaks(*ctx, run, as_json);
  return run_planned(*ctx, peaks, plan, as_json);
}

cli::RegisterCommand reg{{"bench", "Benchmark suite: copy, gemm, adamw, scan, moe, ... (bench list)", run_bench}};

}  // namespace
