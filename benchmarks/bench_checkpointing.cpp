// Activation memory and step time of one training forward + backward at each gradient
// checkpointing setting (none, balanced = every 2 blocks, aggressive = every 4), measured by
// the device memory tracker (peak of category "activations", and of everything).
//
//   bench_checkpointing --config configs/tiny.json [--config configs/phase1.json ...]
//                       [--batch B] [--seq-len L] [--device D] [--set k=v ...]
// Prints one JSON document. Gradients are bit-identical across settings (tests/kernel/
// test_lora.cpp checks that); this measures what the recompute costs and saves.
#include <chrono>
#include <iostream>

#include "bench_util.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/config.hpp"

using namespace magellano;

int main(int argc, char** argv) try {
  std::vector<std::string> configs, sets;
  int64_t batch = 1, seq_len = 512;
  std::string device;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--config") configs.push_back(next());
    else if (a == "--set") sets.push_back(next());
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--seq-len") seq_len = std::stoll(next());
    else if (a == "--device") device = next();
    else throw Error("unknown option " + a);
  }
  if (configs.empty()) configs = {"configs/tiny.json"};
  auto ctx = Context::create(device);
  nlohmann::json out{{"benchmark", "checkpointing"},
                     {"device", ctx->device().name},
                     {"batch", batch},
                     {"seq_len", seq_len},
                     {"results", nlohmann::json::array()}};
  for (const auto& path : configs) {
    auto s = sets;
    s.push_back("train.batch_size=" + std::to_string(batch));
    s.push_back("train.seq_len=" + std::to_string(seq_len));
    const train::Config cfg = train::load_config(path, s);
    nn::Model model(*ctx, train::model_spec(cfg), 1);
    const auto params = model.trainable_parameters();
    std::mt19937_64 rng(1);
    std::vector<int32_t> ids(batch * seq_len);
    for (auto& x : ids) x = static_cast<int32_t>(rng() % cfg.model.vocab_size);
    const Tensor x = Tensor::from_host_i32(*ctx, Shape{batch, seq_len}, ids);
    auto step = [&](int64_t k) {
      for (auto p : params) p.tensor.zero_grad();
      model.set_checkpoint_every(k);
      nn::TrainingScope training;
      autograd::backward(model.loss(x, x).loss);
      ctx->finish();
    };
    step(0);  // warm-up: kernels built, gradient buffers allocated
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& [name, k] : std::vector<std::pair<std::string, int64_t>>{{"none", 0}, {"balanced", 2}, {"aggressive", 4}}) {
      ctx->memory().reset_peaks();
      const auto t0 = std::chrono::steady_clock::now();
      step(k);
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rows.push_back({{"setting", name},
                      {"k", k},
                      {"peak_activation_bytes", ctx->memory().peak(MemCategory::activations)},
                      {"peak_scratch_bytes", ctx->memory().peak(MemCategory::scratch)},
                      {"peak_total_bytes", ctx->memory().peak_total()},
                      {"step_s", sec}});
      std::cerr << path << " " << name << ": activations " << format_bytes(ctx->memory().peak(MemCategory::activations))
                << ", total " << format_bytes(ctx->memory().peak_total()) << ", " << sec << " s\n";
    }
    out["results"].push_back({{"config", path}, {"layers", cfg.model.layers},
                              {"lora_rank", cfg.lora.rank}, {"base_precision", cfg.lora.base_precision},
                              {"settings", rows}});
  }
  std::cout << out.dump(2) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
