// `bench checkpointing [--config FILE] [--batch B] [--seq-len L]`: activation memory and time
// of one training forward + backward at each gradient-checkpointing setting (none, balanced =
// every 2 blocks, aggressive = every 4, and aggressive with fp16 segment inputs), from the
// device memory tracker (peak of category "activations", and of everything). Gradients are
// bit-identical across the fp32 settings (tests/kernel/test_lora.cpp checks that); this
// measures what the recompute costs and saves.
// Defaults: --config = configs/tiny.json, --batch 1, --seq-len 512.
#include <filesystem>
#include <random>

#include "bench.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/nn/training_mode.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/config.hpp"

namespace magellano::bench {
namespace {

std::vector<Result> run_checkpointing(Context& ctx, const Peaks&, const Options& opts) {
  const std::string config = opts.has("config") ? opts.str("config") : find_config("tiny.json").string();
  const int64_t batch = integer_in(opts, "batch", 1, 1 << 16);
  const int64_t seq_len = integer_in(opts, "seq-len", 1, 1 << 20);
  const train::Config cfg = train::load_config(
      config, {"train.batch_size=" + std::to_string(batch), "train.seq_len=" + std::to_string(seq_len)});
  nn::Model model(ctx, train::model_spec(cfg), 1);
  const auto params = model.trainable_parameters();
  std::mt19937_64 rng(1);
  std::vector<int32_t> ids(batch * seq_len);
  for (auto& x : ids) x = static_cast<int32_t>(rng() % cfg.model.vocab_size);
  const Tensor x = Tensor::from_host_i32(ctx, Shape{batch, seq_len}, ids);
  auto step = [&](int64_t k, bool fp16) {
    for (auto p : params) p.tensor.zero_grad();
    model.set_checkpoint_every(k);
    model.set_checkpoint_inputs_fp16(fp16);
    nn::TrainingScope training;
    autograd::backward(model.loss(x, x).loss);
  };
  step(0, false);  // warm-up: kernels built, gradient buffers allocated
  ctx.finish();
  std::vector<Result> out;
  struct Setting {
    std::string name;
    int64_t every;
    bool fp16;
  };
  const std::vector<Setting> settings = {
      {"none", 0, false}, {"balanced", 2, false}, {"aggressive", 4, false}, {"aggressive_fp16", 4, true}};
  for (const auto& [name, k, fp16] : settings) {
    ctx.memory().reset_peaks();
    Result r;
    r.name = "checkpointing_" + name;
    r.sizes = {{"config", std::filesystem::path(config).stem().string()}, {"batch", batch},
               {"seq_len", seq_len}, {"every", k}, {"inputs", fp16 ? "fp16" : "fp32"}};
    r.median_s = median_seconds(ctx, 1, [&] { step(k, fp16); }, 0);
    r.repeats = 1;
    r.tokens_per_s = double(batch * seq_len) / r.median_s;
    r.extra = {{"peak_activation_bytes", ctx.memory().peak(MemCategory::activations)},
               {"peak_scratch_bytes", ctx.memory().peak(MemCategory::scratch)},
               {"peak_total_bytes", ctx.memory().peak_total()},
               {"lora_rank", cfg.lora.rank}, {"base_precision", train::config_name(cfg.lora.base_precision)}};
    out.push_back(r);
  }
  model.set_checkpoint_every(0);
  model.set_checkpoint_inputs_fp16(false);
  return out;
}

RegisterBench reg{{"checkpointing", "Activation memory and step time per gradient-checkpointing setting",
                   {{"config", Key::text, "", "model config (default: configs/tiny.json)"},
                    {"batch", Key::integer, "1", "sequences per step"},
                    {"seq-len", Key::integer, "512", "tokens per sequence"}},
                   run_checkpointing}};

}  // namespace
}  // namespace magellano::bench
