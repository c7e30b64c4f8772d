// The host side of the suite: the CPU's name, its single-thread copy bandwidth (the peak that
// host baselines are compared with), OpenBLAS SGEMM when the CLI links it, and where the
// preset configs are.
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <limits.h>

#include "bench.hpp"
#include "magellano/runtime/error.hpp"
#if MAGELLANO_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace magellano::bench {
namespace fs = std::filesystem;

std::string host_cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  return "host CPU";
}

double host_copy_gbps() {
  static const double gbps = [] {
    const size_t bytes = size_t(256) << 20;
    std::vector<char> src(bytes, 1), dst(bytes, 0);
    const double s = median_host_seconds(5, [&] { std::memcpy(dst.data(), src.data(), bytes); });
    if (dst[bytes - 1] != 1) throw Error("host copy benchmark produced a wrong result");
    return 2.0 * double(bytes) / s / 1e9;
  }();
  return gbps;
}

// The one place that calls OpenBLAS.
std::optional<double> openblas_sgemm_gflops(int64_t n, int repeats) {
#if MAGELLANO_HAVE_OPENBLAS
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  const double s = median_host_seconds(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  });
  if (std::abs(c[n * n - 1] - 0.125f * n) > 1e-3f * n) throw Error("OpenBLAS SGEMM produced a wrong result");
  return 2.0 * double(n) * n * n / s / 1e9;
#else
  (void)n;
  (void)repeats;
  return std::nullopt;
#endif
}

fs::path find_config(const std::string& file) {
  std::vector<fs::path> dirs = {fs::current_path() / "configs"};
  char exe[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    const fs::path bin = fs::path(std::string(exe, len)).parent_path();
    for (const fs::path& d : {bin, bin.parent_path(), bin.parent_path().parent_path()})
      dirs.push_back(d / "configs");
  }
#ifdef MAGELLANO_SOURCE_DIR
  dirs.push_back(fs::path(MAGELLANO_SOURCE_DIR) / "configs");
#endif
  std::string searched;
  for (const auto& d : dirs) {
    std::error_code ec;
    if (fs::is_regular_file(d / file, ec)) return d / file;
    searched += (searched.empty() ? "" : ", ") + d.string();
  }
  throw Error("cannot find configs/" + file + " (looked in " + searched + "); pass --config FILE.");
}

}  // namespace magellano::bench
