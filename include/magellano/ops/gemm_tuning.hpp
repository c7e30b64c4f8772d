// Which fp32 GEMM implementation ops::gemm uses on a device, and with which parameters.
//
// Three paths:
//   clblast     CLBlast's Xgemm / XgemmDirect kernels, with parameters from the device's tuning
//               file applied through clblast::OverrideParameters (else CLBlast's database).
//   cpu_kernel  cl/gemm_cpu.cl: packed panels and a register-tiled MR x 16 micro-kernel, one
//               work-item per tile, written for CPU OpenCL drivers (PoCL).
//   gpu_kernel  cl/gemm_gpu.cl: 128 x 128 tiles per work-group of 256, 8 x 8 per work-item,
//               the next K step fetched into registers during the current one (GPUs).
//
// Tuning files (configs/tuning/<device-slug>.json, embedded into the library at build time;
// MAGELLANO_GEMM_TUNING=FILE reads another one instead) are written by `magellano tune-gemm`:
//   { "format": "magellano-gemm-tuning/1",
//     "device": "<CL_DEVICE_NAME>", "driver": "<CL_DRIVER_VERSION>", "platform": "...",
//     "date": "YYYY-MM-DD",
//     "gemm_path": "clblast" | "cpu_kernel" | "gpu_kernel",
//     "cpu_kernel": { "MR": 6, "MBLOCK": 16, "KC": 0 },
//     "gpu_kernel": { "BK": 8, "DB": 1 },
//     "clblast": { "Xgemm": { "KWG": 32, ... }, "XgemmDirect": { ... }, ... },
//     "measured": [ { "m", "n", "k", "<path>_gflops" ... } ],   // evidence, not read back
//     "tuner": { "fraction": F, "shapes": [...] } }                 // how it was made
// A file applies to a device whose CL_DEVICE_NAME equals "device"; among several, the one whose
// "driver" also matches wins. Without a file: cpu_kernel on CPU devices, clblast elsewhere.
// MAGELLANO_GEMM=clblast|cpu_kernel|gpu_kernel forces a path (tests, benchmarks).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "magellano/runtime/context.hpp"

namespace magellano::ops {

enum class GemmPath { clblast, cpu_kernel, gpu_kernel };
const char* to_string(GemmPath p);
GemmPath gemm_path_from_string(const std::string& s);  // throws Error naming the choices

// cl/gemm_cpu.cl's knobs: MR rows per tile (2..8), MBLOCK row panels walked per B panel, KC the
// K block per launch (0: all of K in one launch). pack_bytes bounds the packed panels' scratch
// memory per GEMM: K is packed in chunks when all of it would need more.
struct CpuGemmParams {
  int mr = 6;
  int mblock = 16;
  int kc = 0;
  int64_t pack_bytes = int64_t(64) << 20;
};

// cl/gemm_gpu.cl's knobs: bk the K step (8 or 16), db two local buffers (one barrier per step)
// instead of one (two barriers). The defaults are the H100's best (geometric mean).
struct GpuGemmParams {
  int bk = 8;
  bool db = true;
};

struct GemmChoice {
  GemmPath path = GemmPath::clblast;
  // On the GPU paths (clblast, gpu_kernel), products whose output has a side of at most
  // kSkinnySide (LoRA's rank-r factors and their gradients, the MoE router) run through
  // cl/gemm_skinny.cl instead: on by default for non-CPU devices; a tuning file's "skinny": true|false, or
  // MAGELLANO_GEMM_SKINNY=0|1, decides otherwise.
  bool skinny = false;
  CpuGemmParams cpu;
  GpuGemmParams gpu;
  nlohmann::json clblast = nlohmann::json::object();  // kernel name -> {parameter: value}
  std::string source;  // "configs/tuning/<file>", the env file, or "default"
};

// "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3": the tuning file's base name.
std::string device_slug(const std::string& device_name);

// Names of the tuning files compiled into the library (configs/tuning/*.json, no extension).
std::vector<std::string> embedded_tuning_names();

// The tuning document that applies to `device` (env file or embedded), if any.
std::optional<nlohmann::json> find_gemm_tuning(const DeviceInfo& device);

// The choice for ctx's device. The first call per device applies the tuning file's CLBlast
// parameters; later calls return the cached choice. MAGELLANO_GEMM overrides the path.
const GemmChoice& gemm_choice(Context& ctx);

// Tests and benchmarks: force a path (nullopt: back to the device's choice), or other CPU
// or GPU kernel parameters, for every later ops::gemm in this process.
void force_gemm_path(std::optional<GemmPath> path);
void force_cpu_gemm_params(std::optional<CpuGemmParams> params);
void force_gpu_gemm_params(std::optional<GpuGemmParams> params);
void force_skinny_gemm(std::optional<bool> on);

// The narrow side at or below which a product counts as skinny (see GemmChoice::skinny).
constexpr int64_t kSkinnySide = 32;

// CLBlast's parameters for the kernels GEMM uses, as its database had them before any
// override (captured on the first gemm_choice for the device).
const nlohmann::json& clblast_database_parameters(Context& ctx);
// Overrides CLBlast's parameters: params maps kernel name -> {name: value}. Throws on a
// parameter set CLBlast refuses.
void apply_clblast_parameters(Context& ctx, const nlohmann::json& params);

// The kernels whose parameters are tuned and applied, in tuning order.
const std::vector<std::string>& clblast_gemm_kernels();

}  // namespace magellano::ops
