// The up-front memory check of train / eval / generate; what is counted and why is in
// device_fit.hpp.
#include "magellano/train/device_fit.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "magellano/runtime/error.hpp"
#include "magellano/train/model_size.hpp"

namespace magellano::train {

namespace {

constexpr double kF32 = 4;

// format_bytes for sizes that may exceed 2^64 (absurd configs).
std::string bytes_text(double bytes) {
  if (!(bytes < 1.8e19)) return "more than 16 EiB";
  return format_bytes(static_cast<uint64_t>(std::max(0.0, bytes)));
}

// An int64 figure of model_size.hpp, or +inf when it wrapped around (a config too large for
// int64 arithmetic is too large for any device).
double figure(int64_t bytes) { return bytes < 0 ? INFINITY : double(bytes); }

std::string dims(const char* a, double x, const char* b, double y) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s %.0f x %s %.0f", a, x, b, y);
  return buf;
}

// The largest weight matrix of the model, at 4 bytes per element.
Demand largest_matrix(const ModelConfig& m) {
  const double D = double(m.dim), E = double(m.expand) * D, V = double(m.vocab_size),
               R = m.dt_rank > 0 ? double(m.dt_rank) : std::ceil(D / 16), N = double(m.d_state),
               F = double(m.moe.hidden);
  std::vector<Demand> all = {
      {"embedding (" + dims("V", V, "D", D) + ")", V * D * kF32, "Use a smaller model.vocab_size or model.dim"}};
  if (m.num_mamba() > 0) {
    all.push_back({"in_proj weight (" + dims("2E", 2 * E, "D", D) + ")", 2 * E * D * kF32,
                   "Use a smaller model.dim or model.expand"});
    all.push_back({"x_proj weight (" + dims("R+2N", R + 2 * N, "E", E) + ")", (R + 2 * N) * E * kF32,
                   "Use a smaller model.dim, model.d_state or model.dt_rank"});
  }
  if (m.num_mamba2() > 0) {
    const double Di = double(m.mamba2.inner(m.dim)), H = Di / double(m.mamba2.head_dim),
                 GN = double(m.mamba2.n_groups) * double(m.mamba2.d_state), I = 2 * Di + 2 * GN + H;
    all.push_back({"Mamba2 in_proj weight (" + dims("2Di+2GN+H", I, "D", D) + ")", I * D * kF32,
                   "Use a smaller model.dim, model.mamba2.expand or model.mamba2.d_state"});
  }
  if (m.num_moe() > 0) {
    all.push_back({"expert weight (" + dims("F", F, "D", D) + ")", F * D * kF32,
                   "Use a smaller model.moe.hidden or model.dim"});
  }
  return *std::max_element(all.begin(), all.end(),
                           [](const Demand& a, const Demand& b) { return a.bytes < b.bytes; });
}

Demand logits(const ModelConfig& m, double rows, double cols, const std::string& remedy) {
  return {"logits (" + dims("B·L", rows * cols, "V", double(m.vocab_size)) + ", f32)",
          rows * cols * double(m.vocab_size) * kF32, remedy};
}

std::string model_remedy(const Config& c) {
  std::string r = "Use a smaller model (a smaller preset, model.dim or model.layers)";
  if (!c.lora.enabled()) r += ", LoRA (lora.rank)";
  else if (c.lora.base_precision != nn::WeightStorage::nf4 && c.lora.base_precision != nn::WeightStorage::int4)
    r += ", an NF4 or int4 base (lora.base_precision \"nf4\" or \"int4\")";
  if (!c.lora.enabled() && c.train.param_dtype != DType::f16) r += " or fp16 parameters (train.param_dtype \"fp16\")";
  return r;
}

std::string pocl_hint(const DeviceInfo& device) {
  if (!device.is_pocl()) return "";
  return " On PoCL, POCL_MEMORY_LIMIT=<GB> sets the device's memory (now " + format_bytes(device.global_mem_bytes) +
         ").";
}

}  // namespace

double DeviceDemand::total() const {
  double t = 0;
  for (const Demand& d : parts) t += d.bytes;
  return t;
}

DeviceDemand training_demand(const Config& c, int64_t ranks) {
  const MemoryEstimate e = estimate_rank_memory(c, ranks);
  const std::string model = model_remedy(c);
  DeviceDemand d;
  d.parts = {{"weights", figure(e.weights), model},
             {"gradients", figure(e.gradients), model},
             {"optimizer state", figure(e.optimizer_state), model},
             logits(c.model, double(c.train.batch_size), double(c.train.seq_len),
                    "Use a smaller train.batch_size or train.seq_len (train.grad_accum keeps the tokens per step)")};
  d.estimate_total = figure(e.total);
  const Demand matrix = largest_matrix(c.model);
  d.largest = matrix.bytes >= d.parts.back().bytes ? matrix : d.parts.back();
  return d;
}

DeviceDemand inference_demand(const Config& c, int64_t rows, int64_t cols, const std::string& batch_remedy) {
  const MemoryEstimate e = estimate_memory(c);
  DeviceDemand d;
  d.parts = {{"weights", figure(e.weights),
              "The model is too large for this device: use one with more memory, or NF4 / int4 weights (`magellano quantize`)"}};
  const Demand matrix = largest_matrix(c.model);
  d.largest = matrix;
  if (rows > 0 && cols > 0) {
    d.parts.push_back(logits(c.model, double(rows), double(cols), batch_remedy));
    if (d.parts.back().bytes > matrix.bytes) d.largest = d.parts.back();
  }
  return d;
}

void require_fit(const DeviceDemand& d, const DeviceInfo& device, const std::string& command) {
  const double memory = double(device.global_mem_bytes), max_alloc = double(device.max_alloc_bytes);
  const double total = d.total();
  if (total > memory) {
    // The remedy that frees the most: parts that share one (weights, gradients, moments) add up.
    std::map<std::string, double> by_remedy;
    for (const Demand& p : d.parts) by_remedy[p.remedy] += p.bytes;
    const std::string remedy = std::max_element(by_remedy.begin(), by_remedy.end(), [](const auto& a, const auto& b) {
                                 return a.second < b.second;
                               })->first;
    std::string parts;
    for (const Demand& p : d.parts)
      if (p.bytes > 0) parts += (parts.empty() ? "" : ", ") + p.what + " " + bytes_text(p.bytes);
    throw Error(command + ": this needs at least " + bytes_text(total) + " on " + device.name + " (" + parts +
                "), " + bytes_text(total - memory) + " more than the device's " + bytes_text(memory) +
                (d.estimate_total > 0 ? " (`magellano info --config` estimates " + bytes_text(d.estimate_total) +
                                            " in all)"
                                      : std::string()) +
                ". " + remedy + "." + pocl_hint(device));
  }
  if (d.largest.bytes > max_alloc)
    throw Error(command + ": the " + d.largest.what + " takes " + bytes_text(d.largest.bytes) + " in one buffer, " +
                bytes_text(d.largest.bytes - max_alloc) + " more than the largest allocation " + device.name +
                " allows (" + bytes_text(max_alloc) + "). " + d.largest.remedy + "." + pocl_hint(device));
}

}  // namespace magellano::train
