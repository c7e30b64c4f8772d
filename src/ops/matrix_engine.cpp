// Detection of the matrix engine (see matrix_engine.hpp) and the compute-dtype names.
#include "magellano/ops/matrix_engine.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <vector>

#include "gemm_mma.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops {
namespace {

std::mutex g_mutex;
std::map<cl_device_id, MatrixEngine> g_engines;
bool g_emulate = false;
bool g_emulate_packed = false;

bool env_off(const char* name) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, "0") == 0;
}

// One probe product of `precision`: op(A) (m x k) stored (k, m), B stored (n, k), beta 0 over a
// poisoned C, against a double-precision host product of the rounded operands. Odd sizes cross the
// tile edges in every direction; K crosses two K steps. Returns "" when it matches, else what failed.
std::string probe(Context& ctx, ComputeDType precision, const MmaForm& form) {
  constexpr int64_t m = 37, n = 21, k = 70;
  std::mt19937 rng(20261207);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> at(k * m), bt(n * k), poison(m * n, std::nanf(""));
  for (auto& v : at) v = u(rng);
  for (auto& v : bt) v = u(rng);
  const Tensor a = Tensor::from_host(ctx, Shape{k, m}, at), b = Tensor::from_host(ctx, Shape{n, k}, bt);
  const Tensor c = Tensor::from_host(ctx, Shape{m, n}, poison);
  const detail::GemmShape s{1, m, n, k, m, k, m * k, 0};
  try {
    detail::gemm_mma_kernel(a, true, b, true, c, 1.0f, 0.0f, s, precision, form);
  } catch (const Error& e) {
    std::string what = e.what();
    return what.substr(0, what.find('\n'));
  }
  const std::vector<float> got = c.to_host();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = round_operand(at[p * m + i], precision), y = round_operand(bt[j * k + p], precision);
        ref += x * y, mag += std::fabs(x * y);
      }
      // fp32 accumulation of k exact products (bf16 and tf32 products are exact in fp32): at most
      // k * 2^-24 * sum |x y|, doubled for the order the instruction adds in.
      if (!(std::fabs(got[i * n + j] - ref) <= 2.0 * k * std::ldexp(1.0, -24) * mag + 1e-30))
        return "probe product differs at (" + std::to_string(i) + ", " + std::to_string(j) + "): " +
               std::to_string(got[i * n + j]) + " vs " + std::to_string(ref);
    }
  return "";
}

MatrixEngine detect(Context& ctx) {
  MatrixEngine e;
  const DeviceInfo& d = ctx.device();
  e.description = matrix_engine_precheck(d);
  if (!e.description.empty()) return e;
  // The forms, fastest first (each later one drops something an earlier one needs).
  std::vector<MmaForm> forms;
  const bool ldmatrix = !env_off("MAGELLANO_MMA_LDMATRIX");
  if (!env_off("MAGELLANO_MMA_PACKED")) {
    if (!env_off("MAGELLANO_MMA_CP_ASYNC")) forms.push_back({false, true, true, ldmatrix, true});
    forms.push_back({false, true, false, ldmatrix, true});
  }
  if (ldmatrix) forms.push_back({false, false, false, true, true});
  forms.push_back({false, false, false, false, true});
  forms.push_back({false, false, false, false, false});
  std::string bf16, tf32, first_failure;
  for (const MmaForm& form : forms) {
    bf16 = probe(ctx, ComputeDType::bf16, form), tf32 = probe(ctx, ComputeDType::tf32, form);
    e.form = form;
    if (bf16.empty() && tf32.empty()) break;
    if (first_failure.empty()) first_failure = form.str() + ": " + (bf16.empty() ? tf32 : bf16);
  }
  // A form that passed both, or else the last (plainest) form, precision by precision.
  e.bf16 = bf16.empty(), e.tf32 = tf32.empty();
  if (e.form.packed && e.bf16 && e.tf32) {
    const MmaForm direct{false, false, false, e.form.ldmatrix, e.form.ptx_cvt};
    e.direct_too = probe(ctx, ComputeDType::bf16, direct).empty() && probe(ctx, ComputeDType::tf32, direct).empty();
  }
  const std::string cc = std::to_string(d.nv_compute_capability / 10) + "." + std::to_string(d.nv_compute_capability % 10);
  e.description = "NVIDIA tensor cores (compute capability " + cc + "): bf16 " +
                  (e.bf16 ? "passed its probe" : "off, " + bf16) + "; tf32 " + (e.tf32 ? "passed its probe" : "off, " + tf32) +
                  (e.bf16 || e.tf32 ? "; " + e.form.str() : "") + (e.direct_too ? " (direct below the packing's break-even)" : "") +
                  (!first_failure.empty() && (e.bf16 || e.tf32) ? " (a faster form failed its probe: " + first_failure + ")" : "");
  return e;
}

}  // namespace

std::string matrix_engine_precheck(const DeviceInfo& d) {
  if (const char* env = std::getenv("MAGELLANO_MATRIX_ENGINE"); env && std::strcmp(env, "0") == 0)
    return "off (MAGELLANO_MATRIX_ENGINE=0)";
  if (d.nv_compute_capability == 0) return "none (not an NVIDIA device with cl_nv_device_attribute_query)";
  if (d.nv_compute_capability < 80)
    return "none (NVIDIA compute capability " + std::to_string(d.nv_compute_capability / 10) + "." +
           std::to_string(d.nv_compute_capability % 10) + ", below 8.0)";
  return "";
}

const MatrixEngine& matrix_engine(Context& ctx) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_engines.find(ctx.cl_device());
    if (it != g_engines.end()) return it->second;
  }
  MatrixEngine e = detect(ctx);  // launches kernels: outside the lock
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_engines.emplace(ctx.cl_device(), std::move(e)).first->second;
}

MmaPath mma_path(Context& ctx) {
  const ComputeDType d = ctx.compute_dtype();
  if (d == ComputeDType::fp32) return MmaPath::none;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_emulate) return MmaPath::emulated;
  }
  const MatrixEngine& e = matrix_engine(ctx);
  return (d == ComputeDType::bf16 ? e.bf16 : e.tf32) ? MmaPath::hardware : MmaPath::none;
}

std::string describe_compute_path(Context& ctx) {
  const ComputeDType d = ctx.compute_dtype();
  if (d == ComputeDType::fp32) return "fp32";
  const std::string name = to_string(d);
  switch (mma_path(ctx)) {
    case MmaPath::emulated: return name + " products on the emulated matrix engine (tests)";
    case MmaPath::hardware:
      return name + " products, fp32 accumulation, on the matrix engine: " + matrix_engine(ctx).description;
    case MmaPath::none: break;
  }
  return "fp32 (" + name + " asked for; matrix engine: " + matrix_engine(ctx).description + ")";
}

MmaForm mma_form(Context& ctx) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_emulate) return MmaForm{true, g_emulate_packed, false, false, false};
  }
  return matrix_engine(ctx).form;
}

bool packing_pays(int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  const double flops = 2.0 * double(batch) * double(m) * double(n) * double(k);
  return flops >= (!ta && tb ? 16e9 : 4e9);
}

void force_mma_emulation(bool on, bool packed) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_emulate = on;
  g_emulate_packed = packed;
}

std::string MmaForm::str() const {
  std::string s = emulate ? "emulated" : "";
  auto add = [&s](const char* part) { s += (s.empty() ? "" : ", ") + std::string(part); };
  add(packed ? "packed operands" : "direct operands");
  if (packed && !emulate) add(cp_async ? "cp.async staging" : "register staging");
  if (!emulate) add(ldmatrix ? "ldmatrix fragment loads" : "32-bit fragment loads");
  if (!emulate) add(ptx_cvt ? "cvt rounding" : "integer rounding");
  return s;
}

const char* to_string(ComputeDType d) {
  switch (d) {
    case ComputeDType::fp32: return "fp32";
    case ComputeDType::tf32: return "tf32";
    case ComputeDType::bf16: return "bf16";
  }
  return "?";
}

ComputeDType compute_dtype_from_string(const std::string& s) {
  for (ComputeDType d : {ComputeDType::fp32, ComputeDType::tf32, ComputeDType::bf16})
    if (s == to_string(d)) return d;
  throw Error("compute dtype '" + s + "' is not one of fp32, tf32, bf16.");
}

float round_operand(float x, ComputeDType d) {
  if (d == ComputeDType::fp32) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (d == ComputeDType::bf16) {
    if ((u & 0x7fffffffu) > 0x7f800000u) return x;  // NaN
    u = ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16;
  } else if ((u & 0x7f800000u) != 0x7f800000u) {
    u = (u + 0x1000u) & 0xffffe000u;
  }
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace magellano::ops
