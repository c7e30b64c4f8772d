// `bench train-step [--config FILE]`: training throughput of a config's model: full steps
// (forward, backward, AdamW with clipping) on random tokens, in tokens/s; the memory tracker's
// peak device bytes during those steps next to `magellano info`'s estimate; and model-FLOP
// utilisation
//   MFU = 6 · active parameters per token · tokens/s / reference fp32 GEMM rate
// where the reference is the best BLAS on the same hardware: --reference-gflops G (with
// --reference-name; gpu_run.sh passes cuBLAS's rate from scripts/torch_gemm.py measured in the
// same session), else on a CPU device OpenBLAS SGEMM at the peak size measured in this run
// (when the CLI is built with OpenBLAS). The result's GFLOP/s is the model's (6·active·tokens/s),
// so its percentage of peak is against this device's own fp32 GEMM through OpenCL.
// Defaults: --config = configs/tiny.json (bench::find_config), --batch = the config's
// train.batch_size, --seq-len 512, --steps 3 (timed, after one warm-up step). --param-dtype
// fp16 sets train.param_dtype "fp16" (with the loss scaling it needs); with the config's
// train.loss_scaling a step is the trainer's: backward from the scale, the finiteness check
// (one scalar read) and AdamW reading the gradients unscaled. --compute-dtype tf32|bf16 sets
// train.compute_dtype (matrix products on the matrix engine where the device has one; the result's
// `compute` says what ran).
#include <random>

#include "bench.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/nn/training_mode.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/loss_scaler.hpp"
#include "magellano/train/model_size.hpp"

namespace magellano::bench {
namespace {

std::vector<Result> run_train_step(Context& ctx, const Peaks& peaks, const Options& opts) {
  const std::string config = opts.has("config") ? opts.str("config") : find_config("tiny.json").string();
  const std::string dtype = opts.str("param-dtype");
  if (dtype != "fp32" && dtype != "fp16") throw Error("--param-dtype must be fp32 or fp16, got '" + dtype + "'.");
  std::vector<std::string> sets;
  if (dtype == "fp16") sets = {"train.param_dtype=fp16", "train.loss_scaling=true"};
  if (opts.has("compute-dtype")) sets.push_back("train.compute_dtype=" + opts.str("compute-dtype"));
  auto cfg = train::load_config(config, sets);
  const int64_t B = opts.has("batch") ? integer_in(opts, "batch", 1, 1 << 20) : cfg.train.batch_size;
  const int64_t L = integer_in(opts, "seq-len", 1, 1 << 20);
  const int steps = static_cast<int>(integer_in(opts, "steps", 1, 1000));
  double ref_gflops = opts.number("reference-gflops", 0);
  if (ref_gflops < 0) throw Error("--reference-gflops must be positive.");
  std::string ref_name = opts.str("reference-name", ref_gflops > 0 ? "given with --reference-gflops" : "");
  if (ref_gflops <= 0 && ctx.device().type == "cpu") {
    if (auto blas = openblas_sgemm_gflops(peaks.peak_size, 3)) {
      ref_gflops = *blas;
      ref_name = "OpenBLAS sgemm " + std::to_string(peaks.peak_size) + ", same run";
    }
  }
  const int64_t V = cfg.model.vocab_size;
  train::Config ecfg = cfg;  // LoRA / QLoRA and checkpointing from the config, at B x L
  ecfg.train.batch_size = B, ecfg.train.seq_len = L;
  const auto counts = train::count_params(cfg);
  const auto estimate = train::estimate_memory(ecfg);

  ctx.set_compute_dtype(cfg.train.compute_dtype);
  struct ResetCompute {
    Context& ctx;
    ~ResetCompute() { ctx.set_compute_dtype(ComputeDType::fp32); }
  } reset_compute{ctx};
  nn::Model model(ctx, train::model_spec(cfg), 1);
  optim::AdamW adamw(ctx, model.trainable_parameters(),
                     {.lr = 1e-4f, .stochastic_rounding = cfg.train.fp16_rounding == train::Fp16Rounding::stochastic,
                      .states = cfg.train.optimizer_states, .offload = cfg.train.optimizer_offload});
  // The peak of the training steps (a QLoRA model passes through one fp32 block per block
  // while it is built and quantized).
  ctx.memory().reset_peaks();
  std::mt19937_64 rng(1);
  std::vector<int32_t> x(B * L), y(B * L);
  for (auto& v : x) v = static_cast<int32_t>(rng() % V);
  for (auto& v : y) v = static_cast<int32_t>(rng() % V);
  Tensor tx = Tensor::from_host_i32(ctx, Shape{B, L}, x), ty = Tensor::from_host_i32(ctx, Shape{B, L}, y);
  const bool scaling = cfg.train.loss_scaling;
  train::LossScaler scaler(cfg.train.loss_scale_init, cfg.train.loss_scale_growth_interval);
  auto step = [&] {
    adamw.zero_grad();
    nn::TrainingScope training;
    auto lo = model.loss(tx, ty);
    if (!scaling) {
      autograd::backward(lo.loss);
      adamw.step(1e-4f, 1.0f);
      return;
    }
    const float scale = scaler.scale();
    autograd::backward(lo.loss, Tensor::full(ctx, lo.loss.shape(), scale));
    if (scaler.update(train::grads_finite(adamw))) adamw.step(1e-4f, 1.0f, 1.0f / scale);
  };
  const double s = median_seconds(ctx, steps, step);
  const Tensor last_norm = adamw.last_grad_norm();  // undefined when loss scaling skipped every step
  if (!last_norm.defined() || !std::isfinite(last_norm.item()))
    throw Error("train-step benchmark: no step had a finite gradient norm");

  const double tps = double(B * L) / s;
  const double model_gflops = 6.0 * double(counts.active_per_token) * tps / 1e9;
  const uint64_t peak = ctx.memory().peak_total();
  Result r;
  r.name = "train_step";
  r.sizes = {{"config", std::filesystem::path(config).stem().string()}, {"batch", B}, {"seq_len", L},
             {"param_dtype", train::config_name(cfg.train.param_dtype)},
             {"compute_dtype", train::config_name(cfg.train.compute_dtype)}};
  r.median_s = s;
  r.repeats = steps;
  r.gflops = model_gflops;
  r.tokens_per_s = tps;
  r.extra = {{"config_file", config},
             {"optimizer_states", train::config_name(cfg.train.optimizer_states)},
             {"optimizer_offload", train::config_name(cfg.train.optimizer_offload)},
             {"params_total", counts.total},
             {"params_trainable", counts.trainable},
             {"active_params_per_token", counts.active_per_token},
             {"peak_device_bytes", peak},
             {"peak_reserved_bytes", ctx.memory().peak_reserved()},
             {"peak_by_category", ctx.memory().to_json()},
             {"estimate_total_bytes", estimate.total},
             {"memory_estimate", train::to_json(estimate)},
             {"peak_over_estimate", double(peak) / double(estimate.total)},
             {"loss_scaling", scaling},
             {"skipped_steps", scaler.skipped_steps()},
             {"mfu_vs_device_gemm", model_gflops / peaks.gemm_gflops},
             {"compute", ops::describe_compute_path(ctx)}};
  if (ref_gflops > 0) {
    r.extra["reference_gemm"] = {{"name", ref_name}, {"gflops", ref_gflops}};
    r.extra["mfu"] = model_gflops / ref_gflops;
  } else {
    r.extra["mfu"] = nullptr;
    r.extra["mfu_note"] = "no reference BLAS rate: pass --reference-gflops (or build the CLI with OpenBLAS on a CPU)";
  }
  if (ctx.profiler().enabled()) {  // MAGELLANO_PROFILE=1: device time per kernel of one more step
    ctx.profiler().discard();
    step();
    nlohmann::json prof = nlohmann::json::array();
    for (const auto& e : ctx.profiler().report())
      prof.push_back({{"kernel", e.name}, {"calls", e.calls}, {"device_ms", e.seconds * 1e3}});
    r.extra["profile_one_step"] = prof;
  }
  return {r};
}

RegisterBench reg{{"train-step", "Training steps of a config's model: tokens/s, peak memory vs estimate, MFU",
                   {{"config", Key::text, "", "model config (default: configs/tiny.json)"},
                    {"batch", Key::integer, "", "sequences per step (default: the config's train.batch_size)"},
                    {"seq-len", Key::integer, "512", "tokens per sequence"},
                    {"steps", Key::integer, "3", "timed steps, after one warm-up step"},
                    {"param-dtype", Key::text, "fp32", "fp32, or fp16 (with the loss scaling it needs)"},
                    {"compute-dtype", Key::text, "", "matrix products in fp32, tf32 or bf16 (default: the config's)"},
                    {"reference-gflops", Key::number, "", "the best BLAS fp32 GEMM rate on this hardware, for MFU"},
                    {"reference-name", Key::text, "", "what --reference-gflops was measured with"}},
                   run_train_step}};

}  // namespace
}  // namespace magellano::bench
