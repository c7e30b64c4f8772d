// magellano info [--json]: every OpenCL device and what it offers.
// magellano info --config FILE [--set k=v]... [--json]: the model's parameter counts and the
// training-memory estimate for the configured batch x context (no device needed).
// ... --ranks N: also the memory per rank of data-parallel training on N ranks, with and without
// ZeRO stage 1, and the moments of each train.optimizer_states / optimizer_offload setting.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "options.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/device.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/model_size.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

// "77,035,520"
std::string grouped(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

// The device's matrix engine: its probe runs only where the device could have one.
std::string matrix_engine_of(const DeviceInfo& d) {
  const std::string why_not = ops::matrix_engine_precheck(d);
  if (!why_not.empty()) return why_not;
  auto ctx = Context::create(d);
  return ops::matrix_engine(*ctx).description;
}

std::string millions(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  return buf;
}

// Per-rank memory on `ranks` ranks: [zero_stage 0, zero_stage 1] of the config as it is, and the
// moments (device, host bytes) per rank of every optimizer_states x optimizer_offload setting.
struct RankMemory {
  train::MemoryEstimate stage[2];
  struct Moments {
    optim::StateFormat states;
    optim::StatePlacement offload;
    int64_t device[2], host[2];  // per zero_stage
  };
  std::vector<Moments> moments;
};

RankMemory rank_memory(const train::Config& cfg, int64_t ranks) {
  RankMemory out;
  for (int z = 0; z < 2; ++z) {
    train::Config c = cfg;
    c.train.zero_stage = z;
    out.stage[z] = train::estimate_rank_memory(c, ranks);
  }
  for (auto f : {optim::StateFormat::fp32, optim::StateFormat::int8})
    for (auto where : {optim::StatePlacement::device, optim::StatePlacement::host}) {
      RankMemory::Moments m{f, where, {}, {}};
      for (int z = 0; z < 2; ++z) {
        train::Config c = cfg;
        c.train.zero_stage = z;
        c.train.optimizer_states = f;
        c.train.optimizer_offload = where;
        const auto e = train::estimate_rank_memory(c, ranks);
        m.device[z] = e.optimizer_state;
        m.host[z] = e.optimizer_host;
      }
      out.moments.push_back(m);
    }
  return out;
}

void print_rank_memory(const train::Config& cfg, const RankMemory& r, int64_t ranks) {
  std::printf("per rank, data parallel on %lld ranks (all weights and gradients on every rank, batch %lld each)\n",
              (long long)ranks, (long long)cfg.train.batch_size);
  std::printf("  %-30s %22s %22s\n", "", "zero_stage 0", "zero_stage 1");
  const auto row = [](const char* what, int64_t a, int64_t b) {
    std::printf("  %-30s %22s %22s\n", what, format_bytes(uint64_t(a)).c_str(), format_bytes(uint64_t(b)).c_str());
  };
  row("weights", r.stage[0].weights, r.stage[1].weights);
  row("gradients", r.stage[0].gradients, r.stage[1].gradients);
  row(cfg.train.optimizer_offload == optim::StatePlacement::host ? "optimizer state pages" : "optimizer state",
      r.stage[0].optimizer_state, r.stage[1].optimizer_state);
  row("activations", r.stage[0].activations, r.stage[1].activations);
  row("total", r.stage[0].total, r.stage[1].total);
  if (r.stage[0].optimizer_host > 0) row("host: optimizer state", r.stage[0].optimizer_host, r.stage[1].optimizer_host);
  std::printf("  AdamW moments per rank by train.optimizer_states / optimizer_offload (device + host):\n");
  for (const auto& m : r.moments) {
    char what[64];
    std::snprintf(what, sizeof what, "  %s, %s", train::config_name(m.states),
                  m.offload == optim::StatePlacement::host ? "host (paged)" : "device");
    if (m.offload == optim::StatePlacement::host) {
      const auto both = [](int64_t d, int64_t h) { return format_bytes(uint64_t(d)) + " + " + format_bytes(uint64_t(h)); };
      std::printf("  %-30s %22s %22s  (device pages + host)\n", what, both(m.device[0], m.host[0]).c_str(),
                  both(m.device[1], m.host[1]).c_str());
    } else {
      row(what, m.device[0], m.device[1]);
    }
  }
}

nlohmann::json rank_memory_json(const RankMemory& r, int64_t ranks) {
  nlohmann::json j{{"ranks", ranks},
                   {"zero_stage_0", train::to_json(r.stage[0])},
                   {"zero_stage_1", train::to_json(r.stage[1])},
                   {"moments", nlohmann::json::array()}};
  for (const auto& m : r.moments)
    for (int z = 0; z < 2; ++z)
      j["moments"].push_back({{"optimizer_states", train::config_name(m.states)},
                              {"optimizer_offload", train::config_name(m.offload)},
                              {"zero_stage", z},
                              {"device_bytes", m.device[z]},
                              {"host_bytes", m.host[z]}});
  return j;
}

int model_info(const std::string& path, const std::vector<std::string>& sets, bool as_json, int64_t ranks) {
  const train::Config cfg = train::load_config(path, sets);
  const train::ModelConfig& m = cfg.model;
  const auto p = train::count_params(cfg);
  const auto mem = train::estimate_memory(cfg);
  if (as_json) {
    nlohmann::json j;
    j["config"] = path;
    j["params_total"] = p.total;
    j["params_trainable"] = p.trainable;
    j["params_active_per_token"] = p.active_per_token;
    j["params"] = train::to_json(p);
    j["memory_estimate_bytes"] = train::to_json(mem);
    j["model"] = cfg.to_json()["model"];
    if (ranks > 0) j["per_rank_memory_bytes"] = rank_memory_json(rank_memory(cfg, ranks), ranks);
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const auto line = [](const char* what, int64_t bytes) {
    std::printf("  %-22s %12s\n", what, format_bytes(static_cast<uint64_t>(bytes)).c_str());
  };
  std::printf("%s: %lld Mamba + %lld Mamba2 + %lld attention + %lld MoE + %lld MLP layers, dim %lld, vocabulary %lld, "
              "%lld experts (top-%lld, hidden %lld)\n",
              path.c_str(), (long long)p.mamba_layers, (long long)p.mamba2_layers, (long long)p.attention_layers,
              (long long)p.moe_layers, (long long)p.mlp_layers, (long long)m.dim, (long long)m.vocab_size,
              (long long)m.moe.experts, (long long)m.moe.top_k, (long long)m.moe.hidden);
  if (p.attention_layers > 0) {
    const nn::AttentionConfig a = m.attention_config();
    std::printf("attention %lld heads / %lld kv heads of width %lld, score scale %g, ", (long long)a.heads,
                (long long)a.kv(), (long long)a.width(), a.score_scale());
    if (a.rope_theta != 0.0)
      std::printf("rotary positions (theta %g)\n", a.rope_theta);
    else
      std::printf("no positions (NoPE)\n");
  }
  if (m.moe.router != nn::MoERouter::softmax_topk || !m.moe.normalize_top_k || m.moe.shared_expert_hidden > 0)
    std::printf("MoE routing %s%s, shared expert hidden %lld\n", train::config_name(m.moe.router),
                m.moe.normalize_top_k ? "" : " (not renormalised)", (long long)m.moe.shared_expert_hidden);
  std::printf("parameters\n");
  std::printf("  %-22s %15s  (%s)\n", "total", grouped(p.total).c_str(), millions(p.total).c_str());
  std::printf("  %-22s %15s  (%s)\n", "trainable", grouped(p.trainable).c_str(), millions(p.trainable).c_str());
  std::printf("  %-22s %15s  (%s)\n", "active per token", grouped(p.active_per_token).c_str(),
              millions(p.active_per_token).c_str());
  if (cfg.lora.enabled())
    std::printf("training memory estimate, batch %lld x context %lld (LoRA rank %lld, %s base, "
                "checkpointing every %lld blocks, AdamW on the adapters)\n",
                (long long)mem.batch, (long long)mem.seq_len, (long long)cfg.lora.rank,
                train::config_name(cfg.lora.base_precision), (long long)cfg.train.gradient_checkpointing);
  else
    std::printf("training memory estimate, batch %lld x context %lld (%s, AdamW)\n",
                (long long)mem.batch, (long long)mem.seq_len,
                cfg.train.param_dtype == DType::f16 ? "fp16 matrix weights and gradients" : "fp32");
  std::printf("  AdamW moments %s (%s bytes per trained parameter), %s\n",
              train::config_name(cfg.train.optimizer_states),
              cfg.train.optimizer_states == optim::StateFormat::int8 ? "2 + 8/256" : "8",
              cfg.train.optimizer_offload == optim::StatePlacement::host
                  ? "in host memory, streamed through the device in pages"
                  : "in device memory");
  line("weights", mem.weights);
  line("gradients", mem.gradients);
  line(cfg.train.optimizer_offload == optim::StatePlacement::host ? "optimizer state pages" : "optimizer state",
       mem.optimizer_state);
  line("activations", mem.activations);
  line("  mamba layers", mem.mamba_activations);
  line("  scan chunk states", mem.scan_states);
  line("  mamba2 layers", mem.mamba2_activations);
  line("  attention layers", mem.attention_activations);
  line("  moe layers", mem.moe_activations);
  line("  mlp layers", mem.mlp_activations);
  line("  head (logits x2)", mem.head);
  line("  backward workspace", mem.workspace);
  line("total", mem.total);
  if (mem.optimizer_host > 0) line("host: optimizer state", mem.optimizer_host);
  if (ranks > 0) print_rank_memory(cfg, rank_memory(cfg, ranks), ranks);
  return 0;
}

int run_info(int argc, char** argv) {
  po::options_description opts(
      "magellano info: list OpenCL platforms and devices, or with --config a model's size\n"
      "  magellano info [--json]\n"
      "  magellano info --config FILE [--set key.path=value]... [--ranks N] [--json]\n"
      "Options");
  std::string config;
  std::vector<std::string> sets;
  int64_t ranks = 0;
  cli::add_common_options(opts, cli::kJson);
  opts.add_options()(
      "config", po::value(&config), "a model config (e.g. configs/tiny.json): print its parameter "
                                    "counts and training-memory estimate")(
      "set", po::value(&sets)->composing(),
      "override a config key, e.g. --set train.batch_size=4 (repeatable; needs --config)")(
      "ranks", po::value(&ranks),
      "with --config: also the memory per rank of data-parallel training on N ranks (mpirun -np N), "
      "with and without ZeRO stage 1 (train.zero_stage)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (vm.count("ranks") && ranks < 1) throw Error("info: --ranks must be a rank count >= 1, got " + std::to_string(ranks) + ".");
  if (vm.count("ranks") && !vm.count("config")) throw Error("info: --ranks needs --config FILE (e.g. --config configs/tiny.json).");
  if (vm.count("config")) return model_info(config, sets, cli::json_option(vm), ranks);
  if (!sets.empty()) throw Error("info: --set needs --config FILE (e.g. --config configs/tiny.json).");
  const auto devices = list_devices();
  std::string chosen;
  try {
    chosen = select_device("", devices).id();
  } catch (const std::exception&) {
  }
  if (cli::json_option(vm)) {
    nlohmann::json j;
    j["devices"] = nlohmann::json::array();
    for (const auto& d : devices) {
      nlohmann::json dj = to_json(d);
      dj["kernel_mapping"] = ops::to_string(ops::kernel_mapping(d));  // ops/mapping.hpp
      dj["matrix_engine"] = matrix_engine_of(d);  // ops/matrix_engine.hpp: train.compute_dtype tf32 / bf16
      j["devices"].push_back(dj);
    }
    j["default_device"] = chosen.empty() ? nlohmann::json(nullptr) : nlohmann::json(chosen);
    std::cout << j.dump(2) << "\n";
    return devices.empty() ? 1 : 0;
  }
  if (devices.empty()) {
    std::cerr << "error: no OpenCL device found. Install a driver (scripts/setup.sh installs "
                 "PoCL for the CPU) and check `clinfo -l`.\n";
    return 1;
  }
  for (const auto& d : devices) {
    std::cout << "[" << d.id() << "] " << d.name << (d.id() == chosen ? "   (default)" : "")
              << "\n"
              << "    platform        " << d.platform_name << " (" << d.platform_version << ")\n"
              << "    type            " << d.type << "\n"
              << "    driver          " << d.driver_version << "\n"
              << "    OpenCL          " << d.opencl_version << ", " << d.opencl_c_version << "\n"
              << "    compute units   " << d.compute_units << "\n"
              << "    global memory   " << format_bytes(d.global_mem_bytes) << "\n"
              << "    max allocation  " << format_bytes(d.max_alloc_bytes) << "\n"
              << "    local memory    " << format_bytes(d.local_mem_bytes) << "\n"
              << "    fp16 / fp64     " << (d.fp16 ? "yes" : "no") << " / "
              << (d.fp64 ? "yes" : "no") << "\n"
              << "    kernel mapping  " << ops::to_string(ops::kernel_mapping(d))
              << " (row-wise and pointwise kernels)\n"
              << "    matrix engine   " << matrix_engine_of(d) << " (train.compute_dtype tf32 / bf16)\n";
  }
  return 0;
}

cli::RegisterCommand reg{{"info", "List OpenCL devices and their limits", run_info}};

}  // namespace
