#include "magellano/ops/gemm_tuning.hpp"

#include <clblast.h>

#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>

#include "gemm_cpu.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano {
const std::map<std::string, std::string>& embedded_gemm_tuning_files();  // generated
}

namespace magellano::ops {
namespace {

std::mutex g_mutex;
std::map<cl_device_id, GemmChoice> g_choices;
std::map<cl_device_id, nlohmann::json> g_database;
std::optional<GemmPath> g_forced_path;
std::optional<CpuGemmParams> g_forced_cpu;
std::optional<GpuGemmParams> g_forced_gpu;
std::optional<bool> g_forced_skinny;

// Parses and checks the keys choice_from() reads, so a malformed file gets one line.
nlohmann::json parse_tuning(const std::string& text, const std::string& where) {
  const std::string again = " Regenerate it with `magellano tune-gemm`.";
  nlohmann::json j = parse_json(text, "GEMM tuning file " + where, again);
  if (!j.is_object() || !j.contains("device") || !j["device"].is_string())
    throw Error("GEMM tuning file " + where + " has no \"device\" name." + again);
  if (j.contains("gemm_path") && !j["gemm_path"].is_string())
    throw Error("GEMM tuning file " + where + ": \"gemm_path\" must be a string." + again);
  for (const char* section : {"cpu_kernel", "gpu_kernel", "clblast"})
    if (j.contains(section) && !j[section].is_object())
      throw Error("GEMM tuning file " + where + ": \"" + section + "\" must be an object." + again);
  if (j.contains("clblast"))
    for (const auto& [kernel, params] : j["clblast"].items()) {
      bool ok = params.is_object();
      if (ok)
        for (const auto& [k, v] : params.items()) ok = ok && v.is_number_unsigned();
      if (!ok)
        throw Error("GEMM tuning file " + where + ": clblast." + excerpt(kernel) +
                    " must map parameter names to integers >= 0." + again);
    }
  return j;
}

int int_param(const nlohmann::json& obj, const char* section, const char* key, int fallback, int lo,
              int hi, const std::string& where) {
  if (!obj.contains(key)) return fallback;
  if (!obj[key].is_number_integer() || obj[key].get<int64_t>() < lo || obj[key].get<int64_t>() > hi)
    throw Error("GEMM tuning file " + where + ": " + section + "." + key + " must be an integer in [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "].");
  return obj[key].get<int>();
}

GemmChoice choice_from(const DeviceInfo& dev) {
  GemmChoice c;
  c.path = dev.type == "cpu" ? GemmPath::cpu_kernel : GemmPath::clblast;
  c.skinny = dev.type != "cpu";
  c.source = "default";
  if (auto doc = find_gemm_tuning(dev)) {
    const std::string where = (*doc)["_source"].get<std::string>();
    c.source = where;
    if (doc->contains("gemm_path")) c.path = gemm_path_from_string((*doc)["gemm_path"].get<std::string>());
    if (doc->contains("cpu_kernel")) {
      const auto& k = (*doc)["cpu_kernel"];
      c.cpu.mr = int_param(k, "cpu_kernel", "MR", c.cpu.mr, 2, 8, where);
      c.cpu.mblock = int_param(k, "cpu_kernel", "MBLOCK", c.cpu.mblock, 1, 1 << 16, where);
      c.cpu.kc = int_param(k, "cpu_kernel", "KC", c.cpu.kc, 0, 1 << 30, where);
    }
    if (doc->contains("gpu_kernel")) {
      const auto& k = (*doc)["gpu_kernel"];
      c.gpu.bk = int_param(k, "gpu_kernel", "BK", c.gpu.bk, 8, 16, where);
      if (c.gpu.bk != 8 && c.gpu.bk != 16)
        throw Error("GEMM tuning file " + where + ": gpu_kernel.BK must be 8 or 16.");
      c.gpu.db = int_param(k, "gpu_kernel", "DB", c.gpu.db, 0, 1, where) == 1;
    }
    if (doc->contains("clblast")) c.clblast = (*doc)["clblast"];
    if (doc->contains("skinny")) {
      if (!(*doc)["skinny"].is_boolean()) throw Error(where + ": \"skinny\" must be true or false.");
      c.skinny = (*doc)["skinny"].get<bool>();
    }
  }
  return c;
}

}  // namespace

const char* to_string(GemmPath p) {
  return p == GemmPath::clblast ? "clblast" : p == GemmPath::cpu_kernel ? "cpu_kernel" : "gpu_kernel";
}

GemmPath gemm_path_from_string(const std::string& s) {
  if (s == "clblast") return GemmPath::clblast;
  if (s == "cpu_kernel" || s == "cpu") return GemmPath::cpu_kernel;
  if (s == "gpu_kernel" || s == "gpu") return GemmPath::gpu_kernel;
  throw Error("Unknown GEMM path '" + s + "': use clblast, cpu_kernel or gpu_kernel.");
}

std::string device_slug(const std::string& name) {
  std::string out;
  for (unsigned char ch : name) {
    if (std::isalnum(ch)) out += static_cast<char>(std::tolower(ch));
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "device" : out;
}

std::vector<std::string> embedded_tuning_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : embedded_gemm_tuning_files()) names.push_back(name);
  return names;
}

std::optional<nlohmann::json> find_gemm_tuning(const DeviceInfo& dev) {
  if (const char* path = std::getenv("MAGELLANO_GEMM_TUNING"); path && *path) {
    const std::string text = read_whole_file(path, "MAGELLANO_GEMM_TUNING file",
                                             " Point it at a file `magellano tune-gemm` wrote.");
    nlohmann::json j = parse_tuning(text, path);
    if (j["device"].get<std::string>() != dev.name) return std::nullopt;
    j["_source"] = path;
    return j;
  }
  std::optional<nlohmann::json> best;
  for (const auto& [name, text] : embedded_gemm_tuning_files()) {
    nlohmann::json j = parse_tuning(text, "configs/tuning/" + name + ".json");
    if (j["device"].get<std::string>() != dev.name) continue;
    j["_source"] = "configs/tuning/" + name + ".json";
    const bool driver_match = j.value("driver", "") == dev.driver_version;
    if (!best || driver_match) best = j;
    if (driver_match) break;
  }
  return best;
}

const std::vector<std::string>& clblast_gemm_kernels() {
  static const std::vector<std::string> k = {"Xgemm", "XgemmDirect", "Copy", "Pad",
                                             "Transpose", "Padtranspose"};
  return k;
}

const GemmChoice& gemm_choice(Context& ctx) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const cl_device_id dev = ctx.cl_device();
  auto it = g_choices.find(dev);
  if (it == g_choices.end()) {
    nlohmann::json db = nlohmann::json::object();
    for (const auto& kernel : clblast_gemm_kernels()) {
      std::unordered_map<std::string, size_t> p;
      if (clblast::RetrieveParameters(dev, kernel, clblast::Precision::kSingle, p) ==
          clblast::StatusCode::kSuccess)
        for (const auto& [k, v] : p) db[kernel][k] = v;
    }
    g_database[dev] = db;
    GemmChoice c = choice_from(ctx.device());
    for (const auto& [kernel, params] : c.clblast.items()) {
      std::unordered_map<std::string, size_t> p;
      for (const auto& [k, v] : params.items()) p[k] = v.get<size_t>();
      check_clblast(static_cast<int>(clblast::OverrideParameters(dev, kernel,
                                                                 clblast::Precision::kSingle, p)),
                    "OverrideParameters", "applying " + kernel + " from " + c.source +
                        "; regenerate that file with `magellano tune-gemm`");
    }
    it = g_choices.emplace(dev, std::move(c)).first;
  }
  return it->second;
}

void force_gemm_path(std::optional<GemmPath> path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_forced_path = path;
}

void force_cpu_gemm_params(std::optional<CpuGemmParams> params) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_forced_cpu = params;
}

void force_gpu_gemm_params(std::optional<GpuGemmParams> params) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_forced_gpu = params;
}

void force_skinny_gemm(std::optional<bool> on) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_forced_skinny = on;
}

// Used by ops::gemm: the path and CPU parameters in effect for this call.
detail::GemmRoute detail::effective_gemm_choice(Context& ctx) {
  const GemmChoice& choice = gemm_choice(ctx);
  detail::GemmRoute c{choice.path, choice.skinny, choice.cpu, choice.gpu};
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_forced_path) c.path = *g_forced_path;
  else if (const char* env = std::getenv("MAGELLANO_GEMM"); env && *env)
    c.path = gemm_path_from_string(env);
  if (g_forced_cpu) c.cpu = *g_forced_cpu;
  if (g_forced_gpu) c.gpu = *g_forced_gpu;
  if (g_forced_skinny) c.skinny = *g_forced_skinny;
  else if (const char* env = std::getenv("MAGELLANO_GEMM_SKINNY"); env && *env) {
    const std::string v = env;
    if (v != "0" && v != "1") throw Error("MAGELLANO_GEMM_SKINNY must be 0 or 1, got '" + v + "'.");
    c.skinny = v == "1";
  }
  return c;
}

const nlohmann::json& clblast_database_parameters(Context& ctx) {
  gemm_choice(ctx);
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_database[ctx.cl_device()];
}

void apply_clblast_parameters(Context& ctx, const nlohmann::json& params) {
  for (const auto& [kernel, values] : params.items()) {
    std::unordered_map<std::string, size_t> p;
    for (const auto& [k, v] : values.items()) p[k] = v.get<size_t>();
    check_clblast(static_cast<int>(clblast::OverrideParameters(ctx.cl_device(), kernel,
                                                               clblast::Precision::kSingle, p)),
                  "OverrideParameters", "setting " + kernel + "'s parameters");
  }
}

}  // namespace magellano::ops
