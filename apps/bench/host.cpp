// The host side of the suite: the CPU's name, its single-thread copy bandwidth (the peak that
// host baselines are compared with), OpenBLAS SGEMM when it is installed, and where the
// preset configs are.
#include <dlfcn.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <limits.h>
#include <random>

#include "bench.hpp"
#include "magellano/io/project_files.hpp"
#include "magellano/runtime/error.hpp"

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

namespace {
// OpenBLAS's cblas_sgemm, looked up once. CBLAS constants: row-major 101, no-transpose 111,
// transpose 112.
struct OpenBlas {
  using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
  Sgemm sgemm = nullptr;
  int (*threads)() = nullptr;
  OpenBlas() {
    for (const char* lib : {"libopenblas.so.0", "libopenblas.so"}) {
      void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      sgemm = reinterpret_cast<Sgemm>(dlsym(h, "cblas_sgemm"));
      threads = reinterpret_cast<int (*)()>(dlsym(h, "openblas_get_num_threads"));
      if (sgemm) return;
    }
  }
};

const OpenBlas& openblas() {
  static const OpenBlas blas;
  return blas;
}
}  // namespace

// The one place that calls OpenBLAS.
std::optional<double> openblas_sgemm_gflops(int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                                           int repeats) {
  const OpenBlas& blas = openblas();
  if (!blas.sgemm) return std::nullopt;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (auto& v : a) v = u(rng);
  for (auto& v : b) v = u(rng);
  const int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n);
  const double s = median_host_seconds(repeats, [&] {
    blas.sgemm(101, ta ? 112 : 111, tb ? 112 : 111, static_cast<int>(m), static_cast<int>(n),
               static_cast<int>(k), 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), static_cast<int>(n));
  });
  // c[0] against a float64 dot product: a wrong library (or argument order) fails loudly.
  double want = 0;
  for (int64_t p = 0; p < k; ++p) want += double(a[ta ? p * m : p]) * double(b[tb ? p : p * n]);
  if (std::abs(c[0] - want) > 1e-3 * (1.0 + std::sqrt(double(k))))
    throw Error("OpenBLAS SGEMM produced a wrong result");
  return 2.0 * double(m) * n * k / s / 1e9;
}

int openblas_threads() { return openblas().threads ? openblas().threads() : 0; }

fs::path find_config(const std::string& file) {
#ifdef MAGELLANO_SOURCE_DIR
  const fs::path built_from = MAGELLANO_SOURCE_DIR;
#else
  const fs::path built_from;
#endif
  std::string searched;
  const fs::path p = io::find_project_path({"configs/" + file}, built_from, &searched);
  if (p.empty()) throw Error("cannot find configs/" + file + " (looked in " + searched + "); pass --config FILE.");
  return p;
}

}  // namespace magellano::bench
