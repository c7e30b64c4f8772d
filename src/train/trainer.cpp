#include "magellano/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "magellano/data/batcher.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/loss_scaler.hpp"

namespace magellano::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string clock_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

// Inputs and targets of a (B, L+1) batch: columns [0, L) and [1, L + 1).
std::pair<Tensor, Tensor> split_batch(Context& ctx, const std::vector<int32_t>& batch, int64_t B, int64_t L) {
  std::vector<int32_t> x(B * L), y(B * L);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t) {
      x[b * L + t] = batch[b * (L + 1) + t];
      y[b * L + t] = batch[b * (L + 1) + t + 1];
    }
  return {Tensor::from_host_i32(ctx, Shape{B, L}, x), Tensor::from_host_i32(ctx, Shape{B, L}, y)};
}

}  // namespace

TrainSummary train(const Config& cfg, Context& ctx, const TrainOptions& opt) {
  cfg.require_training_data();
  std::ostream* out = opt.out;
  const auto& tc = cfg.train;
  const int64_t B = tc.batch_size, L = tc.seq_len, V = cfg.model.vocab_size;

  data::Batcher batcher(data::TokenFile::open(*cfg.data.train, static_cast<uint64_t>(V)), B, L,
                        static_cast<uint64_t>(tc.seed));
  std::optional<data::TokenFile> val;
  if (cfg.data.val) val = data::TokenFile::open(*cfg.data.val, static_cast<uint64_t>(V));
  // Evaluation reads the first eval.batches · B chunks of these.
  const std::vector<int32_t> val_tokens = val ? val->read_all() : std::vector<int32_t>();

  nn::Model model(ctx, model_spec(cfg), static_cast<uint64_t>(tc.seed));
  const std::vector<nn::Parameter> trainable = model.trainable_parameters();
  if (out) {
    int64_t n_train = 0, n_all = 0;
    for (const auto& p : trainable) n_train += p.tensor.numel();
    for (const auto& p : model.parameters()) n_all += p.tensor.numel();
    for (auto& l : model.linears())
      if (l.linear->storage() == nn::WeightStorage::nf4) n_all += l.linear->in_features() * l.linear->out_features();
    if (cfg.lora.enabled()) n_all += n_train;
    char line[200];
    std::snprintf(line, sizeof line, "trainable parameters: %lld of %lld (%.4f%%)", (long long)n_train,
                  (long long)n_all, 100.0 * double(n_train) / double(std::max<int64_t>(1, n_all)));
    *out << line;
    if (cfg.lora.enabled())
      *out << "  [LoRA rank " << cfg.lora.rank << ", alpha " << cfg.lora.alpha << ", " << cfg.lora.base_precision
           << " base]";
    *out << "\n";
  }
  optim::AdamW adamw(ctx, trainable,
                     {.lr = float(tc.lr), .beta1 = float(tc.beta1), .beta2 = float(tc.beta2),
                      .eps = float(tc.eps), .weight_decay = float(tc.weight_decay),
                      .stochastic_rounding = tc.fp16_rounding == "stochastic"});
  const optim::LrSchedule schedule{float(tc.lr), float(tc.min_lr), tc.warmup_steps, tc.steps};

  const fs::path run_dir = cfg.checkpoint.dir;
  int64_t step = 0, tokens = 0;
  if (opt.init_from && opt.resume) throw Error("train: give --resume or --init-from, not both.");
  std::string init_from = opt.init_from ? opt.init_from->string() : std::string();
  LossScaler scaler(tc.loss_scale_init, tc.loss_scale_growth_interval);
  if (opt.init_from) {
    load_weights(*opt.init_from / "model.safetensors", model);
    if (out) *out << "initialised from " << opt.init_from->string() << "\n";
  }
  if (opt.resume) {
    if (cfg.lora.enabled()) {  // a LoRA checkpoint holds no base: reload the run's
      const auto st = io::read_json(*opt.resume / "trainer_state.json", "trainer state");
      if (st.contains("init_from") && st["init_from"].is_string()) {
        init_from = st["init_from"].get<std::string>();
        load_weights(fs::path(init_from) / "model.safetensors", model);
      }
    }
    const auto state = load_training_state(*opt.resume, model, adamw);
    step = state.at("step").get<int64_t>();
    tokens = state.value("tokens", int64_t(0));
    batcher.restore(data::batcher_state_from_json(state.at("batcher")));
    if (state.contains("loss_scaler")) scaler.restore(state["loss_scaler"]);
    if (out) *out << "resumed from " << opt.resume->string() << " at step " << step << "\n";
  }
  fs::create_directories(run_dir);
  std::ofstream metrics(run_dir / "metrics.jsonl", opt.resume ? std::ios::app : std::ios::trunc);
  if (!metrics) throw Error("cannot write " + (run_dir / "metrics.jsonl").string() + ": check checkpoint.dir.");

  TrainSummary summary;
  auto trainer_state = [&] {
    nlohmann::json j{{"step", step}, {"tokens", tokens}, {"batcher", data::to_json(batcher.state())}};
    if (!init_from.empty()) j["init_from"] = init_from;
    if (tc.loss_scaling) j["loss_scaler"] = scaler.to_json();
    return j;
  };
  auto checkpoint = [&] {
    summary.checkpoint = save_checkpoint(run_dir, step, cfg.checkpoint.keep, cfg, model, adamw, trainer_state());
  };
  auto run_eval = [&]() -> std::optional<EvalResult> {
    if (val_tokens.size() < 2) return std::nullopt;
    const EvalResult r = evaluate(model, val_tokens, L, B, cfg.eval.batches * B);
    metrics << nlohmann::json{{"step", step}, {"val_loss", r.loss}, {"val_perplexity", r.perplexity},
                              {"val_tokens", r.tokens}}.dump() << "\n" << std::flush;
    if (out) *out << (opt.terminal ? "\n" : "") << "step " << step << "  validation loss " << r.loss
                  << "  perplexity " << r.perplexity << "\n";
    return r;
  };

  // Running sums of the interval's losses stay on the device; read once per log interval.
  Tensor ce_sum = Tensor::zeros(ctx, Shape{1}), aux_sum = Tensor::zeros(ctx, Shape{1});
  int64_t interval_steps = 0;
  const int64_t start_step = step;
  const auto t0 = Clock::now();
  auto interval_t0 = t0;
  int64_t interval_tokens = 0;
  while (step < tc.steps) {
    adamw.zero_grad();
    std::vector<Tensor> counts;
    for (int64_t a = 0; a < tc.grad_accum; ++a) {
      auto [x, y] = split_batch(ctx, batcher.next(), B, L);
      nn::TrainingScope training;  // dropout on
      // Dropout masks depend on the step and micro-batch only, so a resumed run draws the
      // same ones (the model's forward advances the counter once from here).
      nn::GenerationScope masks(static_cast<uint64_t>(step * tc.grad_accum + a) * 2);
      nn::LossOutput lo = model.loss(x, y);
      if (tc.loss_scaling) autograd::backward(lo.loss, Tensor::full(ctx, lo.loss.shape(), scaler.scale()));
      else autograd::backward(lo.loss);
      autograd::NoGradScope ng;
      ops::scale_into(lo.ce, 1.0f / tc.grad_accum, ce_sum, true);
      if (lo.aux.defined()) ops::scale_into(lo.aux, 1.0f / tc.grad_accum, aux_sum, true);
      counts = lo.expert_counts;
    }
    const float lr = schedule.at(step);
    bool apply = true;
    // The stored gradients are sums over micro-batches of scaled losses; the optimizer reads
    // them times `unscale` (never rewriting them, so fp16 gradients do not underflow).
    float unscale = 1.0f / float(tc.grad_accum);
    if (tc.loss_scaling) {
      unscale /= scaler.scale();
      apply = scaler.update(grads_finite(adamw));  // one scalar read
    }
    if (apply) adamw.step(lr, float(tc.grad_clip), unscale);
    ++step;
    ++interval_steps;
    tokens += B * L * tc.grad_accum;
    interval_tokens += B * L * tc.grad_accum;

    if (step % tc.log_every == 0 || step == tc.steps) {
      const double loss = ce_sum.item() / interval_steps, aux = aux_sum.item() / interval_steps;
      const Tensor gn = tc.grad_clip > 0 ? adamw.last_grad_norm() : Tensor();
      const float grad_norm = (gn.defined() ? gn : adamw.grad_norm(unscale)).item();
      // With loss scaling an Inf gradient only skips its step (the scaler handles it).
      if (!std::isfinite(loss) || !std::isfinite(aux) || (!tc.loss_scaling && !std::isfinite(grad_norm)))
        throw Error("training stopped at step " + std::to_string(step) + ": the " +
                    (std::isfinite(loss) ? "gradient norm" : "loss") + " is " +
                    (std::isnan(std::isfinite(loss) ? grad_norm : loss) ? "NaN" : "infinite") +
                    ". Lower train.lr, raise train.warmup_steps or set train.grad_clip; the last "
                    "checkpoint (if any) is under " + run_dir.string() + ".");
      const auto now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - t0).count();
      const double tps = interval_tokens / std::chrono::duration<double>(now - interval_t0).count();
      const double eta = elapsed / double(step - start_step) * double(tc.steps - step);
      nlohmann::json load = nlohmann::json::array();
      for (const Tensor& c : counts) {
        std::vector<double> frac;
        const auto v = c.to_host_i32();
        double total = 0;
        for (int32_t n : v) total += n;
        for (int32_t n : v) frac.push_back(total > 0 ? n / total : 0.0);
        load.push_back(frac);
      }
      nlohmann::json rec{{"step", step}, {"loss", loss}, {"aux_loss", aux}, {"lr", lr},
                         {"grad_norm", grad_norm}, {"tokens_per_s", tps}, {"tokens", tokens},
                         {"expert_load", load},
                         {"peak_device_bytes", ctx.memory().peak_total()},
                         {"peak_reserved_bytes", ctx.memory().peak_reserved()},
                         {"peak_activation_bytes", ctx.memory().peak(MemCategory::activations)}};
      if (tc.loss_scaling) rec["loss_scaler"] = scaler.to_json();
      metrics << rec.dump() << "\n" << std::flush;
      if (out) {
        char line[256];
        std::snprintf(line, sizeof line,
                      "step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | %s elapsed | ETA %s | peak %s",
                      (long long)step, (long long)tc.steps, loss, lr, tps, clock_text(elapsed).c_str(),
                      clock_text(eta).c_str(), format_bytes(ctx.memory().peak_total()).c_str());
        *out << (opt.terminal ? "\r\033[K" : "") << line << (opt.terminal ? "" : "\n") << std::flush;
      }
      summary.final_loss = loss;
      ops::fill(ce_sum, 0.0f);
      ops::fill(aux_sum, 0.0f);
      interval_steps = 0;
      interval_tokens = 0;
      interval_t0 = now;
    }
    if (cfg.eval.every > 0 && step % cfg.eval.every == 0 && step < tc.steps) run_eval();
    if (cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0 && step < tc.steps) checkpoint();
  }
  if (out && opt.terminal) *out << "\n";
  if (out && ctx.profiler().enabled())
    *out << "device time per kernel over " << (step - start_step) << " steps (MAGELLANO_PROFILE=1):\n"
         << ctx.profiler().report_table();
  summary.val = run_eval();
  checkpoint();
  summary.steps = step;
  const double total = std::chrono::duration<double>(Clock::now() - t0).count();
  summary.tokens_per_s = total > 0 ? double(step - start_step) * B * L * tc.grad_accum / total : 0;
  summary.peak_device_bytes = ctx.memory().peak_total();
  summary.peak_reserved_bytes = ctx.memory().peak_reserved();
  return summary;
}

}  // namespace magellano::train
