#include "magellano/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "magellano/data/batcher.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/nn/training_mode.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/device_fit.hpp"
#include "magellano/train/gradient_sync.hpp"
#include "magellano/train/loss_scaler.hpp"
#include "magellano/train/run_folder.hpp"
#include "magellano/train/zero_shard.hpp"

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

// Inputs (B, L), targets (B, L), prefix lengths ((B), or undefined for causal) and, for a model
// with GLM 2D positions (glm2d), the 2D ids (B, L, 2) of a (B, L+1) batch under the objective
// (data/objective.hpp).
struct DeviceBatch {
  Tensor x, y, prefix, positions;
};
DeviceBatch upload_batch(Context& ctx, const data::ObjectiveBatch& b, bool glm2d) {
  const Shape s{b.batch, b.len};
  DeviceBatch d{Tensor::from_host_i32(ctx, s, b.inputs), Tensor::from_host_i32(ctx, s, b.targets), Tensor(), Tensor()};
  if (!b.prefix.empty()) d.prefix = Tensor::from_host_i32(ctx, Shape{b.batch}, b.prefix);
  if (glm2d) d.positions = Tensor::from_host_i32(ctx, Shape{b.batch, b.len, 2}, b.positions);
  return d;
}

// A training or validation token file. Under blank infilling its ids must stay below the special
// tokens (the model's top three, data/blank_infilling.hpp): a header's vocabulary must leave them
// free, a raw file's ids are bounded by them.
data::TokenFile open_tokens(const fs::path& path, const Config& cfg) {
  const int64_t v = cfg.model.vocab_size;
  if (!cfg.train.objective.uses(data::Objective::blank_infilling)) return data::TokenFile::open(path, static_cast<uint64_t>(v));
  data::TokenFile f = data::TokenFile::open(path, static_cast<uint64_t>(v));
  if (f.vocab_size() == 0) return data::TokenFile::open(path, static_cast<uint64_t>(data::infill_tokens(v).mask));
  data::require_infill_room(f.vocab_size(), v, "token file " + path.string());
  return f;
}

// The checks that need no file written and nothing allocated: training data configured, the
// run fits the device, --resume and --init-from not both, --init-from outside checkpoint.dir.
const Config& checked(const Config& cfg, Context& ctx, const TrainOptions& opt) {
  cfg.require_training_data();
  require_fit(training_demand(cfg, opt.ranks ? opt.ranks->size() : 1), ctx.device(), "train");
  if (opt.init_from && opt.resume) throw Error("train: give --resume or --init-from, not both.");
  if (opt.init_from) refuse_init_from_inside(*opt.init_from, cfg.checkpoint.dir);
  return cfg;
}

// The run's folder: a new run claims checkpoint.dir, a resumed one continues the run that saved
// the checkpoint. Data parallel: rank 0's alone (the other ranks write nothing).
std::optional<RunFolder> open_folder(const Config& cfg, const TrainOptions& opt) {
  if (opt.ranks && opt.ranks->rank() != 0) return std::nullopt;
  if (!opt.resume) return RunFolder::start(cfg.checkpoint.dir, cfg.to_json());
  return RunFolder::resume(cfg.checkpoint.dir, *opt.resume, read_trainer_state(*opt.resume));
}

// A path as stored in trainer_state.json: absolute, so the run loads from any folder.
std::string resolved(const std::optional<fs::path>& p) {
  return p ? fs::absolute(*p).lexically_normal().string() : std::string();
}

// "trainable parameters: N of M (p%)", NF4 / int4 bases counted at their full size, plus the LoRA setup.
void print_parameter_summary(const Config& cfg, nn::Model& model, const std::vector<nn::Parameter>& trainable,
                             std::ostream& out) {
  int64_t n_train = 0, n_all = 0;
  for (const auto& p : trainable) n_train += p.tensor.numel();
  for (const auto& p : model.parameters()) n_all += p.tensor.numel();
  for (auto& l : model.linears())
    if (l.linear->storage() == nn::WeightStorage::nf4 || l.linear->storage() == nn::WeightStorage::int4) n_all += l.linear->in_features() * l.linear->out_features();
  if (cfg.lora.enabled()) n_all += n_train;
  char line[200];
  std::snprintf(line, sizeof line, "trainable parameters: %lld of %lld (%.4f%%)", (long long)n_train,
                (long long)n_all, 100.0 * double(n_train) / double(std::max<int64_t>(1, n_all)));
  out << line;
  if (cfg.lora.enabled())
    out << "  [LoRA rank " << cfg.lora.rank << ", alpha " << cfg.lora.alpha << ", "
        << config_name(cfg.lora.base_precision) << " base]";
  out << "\n";
}

// Each expert's share of the routed tokens, per MoE layer, from its (X) counts.
nlohmann::json expert_load(const std::vector<Tensor>& counts) {
  nlohmann::json load = nlohmann::json::array();
  for (const Tensor& c : counts) {
    std::vector<double> frac;
    const auto v = c.to_host_i32();
    double total = 0;
    for (int32_t n : v) total += n;
    for (int32_t n : v) frac.push_back(total > 0 ? n / total : 0.0);
    load.push_back(frac);
  }
  return load;
}

// One training run: its data, model, optimizer and progress. The constructor builds and
// restores everything; train() below is the loop.
class TrainingRun {
 public:
  TrainingRun(const Config& cfg, Context& ctx, const TrainOptions& opt);

  bool done() const { return step_ >= tc_.steps; }
  // grad_accum micro-batches forward and backward, then the optimizer (unless the loss scaler
  // skips a step with non-finite gradients).
  void optimizer_step();
  // The progress line and metrics record at the end of each log interval; evaluations and
  // checkpoints when configured.
  void after_step();
  // Final evaluation and checkpoint, and the run's figures.
  TrainSummary finish();

 private:
  void restore(const fs::path& dir);
  void log_interval();
  std::optional<EvalResult> evaluate();
  void checkpoint();
  nlohmann::json trainer_state() const;
  // This rank's rows [rank·B, (rank+1)·B) of a (N·B, L+1) batch of the shared stream.
  data::ObjectiveBatch rank_rows(data::ObjectiveBatch global) const;  // this rank's B of the N·B rows
  // Data parallel: every rank's weights hash equals rank 0's, else an Error naming the ranks.
  void check_same_weights() const;
  fs::path run_dir() const { return folder_ ? folder_->dir() : fs::path(cfg_.checkpoint.dir); }

  const Config& cfg_;
  const TrainConfig& tc_;
  Context& ctx_;
  const TrainOptions& opt_;
  std::ostream* out_;
  const int64_t B_, L_;
  Collective* ranks_;    // nullptr: this process alone
  const int N_, rank_;   // ranks and this one's number (1 and 0 alone)
  data::Batcher batcher_;  // the shared stream: N·B windows per micro-batch
  std::vector<int32_t> val_tokens_;  // evaluation reads the first eval.batches · B · N chunks
  std::optional<RunFolder> folder_;  // checkpoint.dir, locked for this run (claimed once the data files are read); rank 0's only
  nn::Model model_;
  optim::AdamW adamw_;
  optim::LrSchedule schedule_;
  LossScaler scaler_;
  std::string init_from_;  // recorded in trainer_state.json (a LoRA resume reloads its base)
  std::ofstream metrics_;  // rank 0's only
  std::optional<GradientSync> sync_;  // data parallel only
  std::optional<ZeroShard> zero_;     // data parallel with train.zero_stage 1 only
  TrainSummary summary_;
  int64_t step_ = 0, tokens_ = 0;

  // This log interval: running loss sums on the device (read once per interval), the last
  // step's learning rate, unscale factor and expert counts.
  Tensor ce_sum_, aux_sum_;
  int64_t interval_steps_ = 0, interval_tokens_ = 0;
  float lr_ = 0, unscale_ = 1;
  std::vector<Tensor> expert_counts_;
  int64_t start_step_ = 0;
  Clock::time_point t0_, interval_t0_;
};

TrainingRun::TrainingRun(const Config& cfg, Context& ctx, const TrainOptions& opt)
    : cfg_(checked(cfg, ctx, opt)),
      tc_(cfg.train),
      ctx_(ctx),
      opt_(opt),
      out_(opt.ranks && opt.ranks->rank() != 0 ? nullptr : opt.out),
      B_(tc_.batch_size),
      L_(tc_.seq_len),
      ranks_(opt.ranks),
      N_(opt.ranks ? opt.ranks->size() : 1),
      rank_(opt.ranks ? opt.ranks->rank() : 0),
      batcher_(open_tokens(*cfg.data.train, cfg), B_ * N_, L_,
               static_cast<uint64_t>(tc_.seed)),
      val_tokens_(cfg.data.val ? open_tokens(*cfg.data.val, cfg).read_all()
                               : std::vector<int32_t>()),
      folder_(open_folder(cfg, opt)),
      model_(ctx, model_spec(cfg), static_cast<uint64_t>(tc_.seed)),
      adamw_(ctx, model_.trainable_parameters(),
             {.lr = float(tc_.lr), .beta1 = float(tc_.beta1), .beta2 = float(tc_.beta2), .eps = float(tc_.eps),
              .weight_decay = float(tc_.weight_decay),
              .stochastic_rounding = tc_.fp16_rounding == Fp16Rounding::stochastic,
              .states = tc_.optimizer_states, .offload = tc_.optimizer_offload,
              .shard = tc_.zero_stage == 1 ? rank_ : 0, .shards = tc_.zero_stage == 1 ? N_ : 1,
              .norm_split = N_}),  // the same norm with and without ZeRO (optim/adamw.hpp)
      schedule_{float(tc_.lr), float(tc_.min_lr), tc_.warmup_steps, tc_.steps},
      scaler_(tc_.loss_scale_init, tc_.loss_scale_growth_interval),
      init_from_(resolved(opt.init_from)) {
  ctx.set_compute_dtype(tc_.compute_dtype);
  if (out_) {
    print_parameter_summary(cfg_, model_, model_.trainable_parameters(), *out_);
    if (tc_.compute_dtype != ComputeDType::fp32) *out_ << "compute: " << ops::describe_compute_path(ctx) << "\n";
  }
  if (opt.init_from) {
    const CheckpointSource source = read_checkpoint_config(*opt.init_from);
    check_same_function(cfg_.model, source.config.model, *opt.init_from);
    load_weights(*opt.init_from, model_, source.locate);  // its model.safetensors or sharded set
    if (out_) *out_ << "initialised from " << opt.init_from->string() << "\n";
  }
  if (opt.resume) restore(*opt.resume);
  // ZeRO stage 1: a reduce-scatter (each rank sums only its share's gradients), and the
  // clipping norm's partial sums summed over the ranks (zero_shard.hpp).
  if (ranks_) sync_.emplace(*ranks_, adamw_.pack(), model_.trainable_parameters(), tc_.allreduce_bf16,
                                tc_.allreduce_bucket, tc_.zero_stage == 1);
  if (ranks_ && tc_.zero_stage == 1) zero_.emplace(*ranks_, adamw_);
  if (out_ && zero_)
    *out_ << "ZeRO stage 1: each rank keeps and updates 1/" << N_ << " of the AdamW moments ("
          << format_bytes(adamw_.device_state_bytes()) << " on the device here)\n";
  // Appended to: a new run's folder holds no metrics, a resumed one's end at the resumed step.
  if (folder_) {
    metrics_.open(folder_->metrics_path(), std::ios::app);
    if (!metrics_) throw Error("cannot write " + folder_->metrics_path().string() + ": check checkpoint.dir.");
  }
  ce_sum_ = Tensor::zeros(ctx, Shape{1});
  aux_sum_ = Tensor::zeros(ctx, Shape{1});
  start_step_ = step_;
  t0_ = interval_t0_ = Clock::now();
}

void TrainingRun::restore(const fs::path& dir) {
  if (cfg_.lora.enabled()) {  // a LoRA checkpoint holds no base: reload the run's
    if (const auto base = read_trainer_state(dir).init_from) {
      init_from_ = *base;
      load_weights(fs::path(init_from_), model_, weights_locator(init_from_));
    }
  }
  const TrainerState state = load_training_state(dir, model_, adamw_);
  step_ = state.step;
  tokens_ = state.tokens;
  batcher_.restore(state.batcher);
  if (!state.loss_scaler.is_null()) scaler_.restore(state.loss_scaler);
  if (out_) *out_ << "resumed from " << dir.string() << " at step " << step_ << "\n";
  if (out_ && state.ranks != N_)
    *out_ << "the checkpoint was written by " << state.ranks << " rank(s), this run has " << N_
          << ": weights, moments, step, loss scale and the data stream's position carry over; the global "
             "batch is now " << B_ * tc_.grad_accum * N_ << " windows (batch_size x grad_accum x ranks)\n";
}

void TrainingRun::optimizer_step() {
  adamw_.zero_grad();
  for (int64_t a = 0; a < tc_.grad_accum; ++a) {
    // The objective sees the shared stream (each prefix fixed by its window's draw index), then
    // this rank takes its rows.
    const uint64_t first_draw = batcher_.draws();
    const DeviceBatch batch = upload_batch(ctx_, rank_rows(data::make_batch(
        tc_.objective, cfg_.model.vocab_size, batcher_.next(), B_ * N_, L_, static_cast<uint64_t>(tc_.seed), first_draw)),
        cfg_.model.infill_positions == data::InfillPositions::glm2d);
    nn::TrainingScope training;  // dropout on
    // Dropout masks depend on the step, micro-batch and rank only, so a resumed run draws the
    // same ones (the model's forward advances the counter once from here).
    nn::GenerationScope masks(static_cast<uint64_t>((step_ * tc_.grad_accum + a) * N_ + rank_) * 2);
    // Overlap: the last micro-batch's forward tells the exchange where each parameter's
    // gradient becomes final in its backward.
    if (sync_ && tc_.allreduce_overlap && a == tc_.grad_accum - 1) sync_->watch();
    nn::LossOutput lo = model_.loss(batch.x, batch.y, batch.prefix, batch.positions);
    if (tc_.loss_scaling) autograd::backward(lo.loss, Tensor::full(ctx_, lo.loss.shape(), scaler_.scale()));
    else autograd::backward(lo.loss);
    autograd::NoGradScope ng;
    ops::scale_into(lo.ce, 1.0f / tc_.grad_accum, ce_sum_, true);
    if (lo.aux.defined()) ops::scale_into(lo.aux, 1.0f / tc_.grad_accum, aux_sum_, true);
    expert_counts_ = lo.expert_counts;
  }
  if (sync_) sync_->sum();  // every rank now holds the sum over ranks (ZeRO: of its share)
  lr_ = schedule_.at(step_);
  bool apply = true;
  // The stored gradients are sums over micro-batches (and ranks) of scaled losses; the optimizer
  // reads them times `unscale` (never rewriting them, so fp16 gradients do not underflow).
  unscale_ = 1.0f / float(tc_.grad_accum * N_);
  if (tc_.loss_scaling) {
    unscale_ /= scaler_.scale();
    const bool finite = grads_finite(adamw_);  // one scalar read
    apply = scaler_.update(ranks_ ? ranks_->all(finite) : finite);  // one decision for all ranks
  }
  if (apply) {
    adamw_.step(lr_, float(tc_.grad_clip), unscale_);  // ZeRO: this rank's share only
    if (zero_) zero_->share_parameters();
  }
  ++step_;
  ++interval_steps_;
  tokens_ += B_ * L_ * tc_.grad_accum * N_;
  interval_tokens_ += B_ * L_ * tc_.grad_accum * N_;
}

void TrainingRun::after_step() {
  if (step_ % tc_.log_every == 0 || step_ == tc_.steps) log_interval();
  if (cfg_.eval.every > 0 && step_ % cfg_.eval.every == 0 && step_ < tc_.steps) evaluate();
  if (cfg_.checkpoint.every > 0 && step_ % cfg_.checkpoint.every == 0 && step_ < tc_.steps) checkpoint();
}

void TrainingRun::log_interval() {
  float ce = ce_sum_.item(), ax = aux_sum_.item();
  if (ranks_) {  // the mean over ranks: every rank's loss is a mean over its B·L tokens
    ce = float(ranks_->sum(ce) / N_);
    ax = float(ranks_->sum(ax) / N_);
  }
  const double loss = ce / interval_steps_, aux = ax / interval_steps_;
  const Tensor gn = tc_.grad_clip > 0 ? adamw_.last_grad_norm() : Tensor();
  const float grad_norm = (gn.defined() ? gn : adamw_.grad_norm(unscale_)).item();
  // With loss scaling an Inf gradient only skips its step (the scaler handles it).
  if (!std::isfinite(loss) || !std::isfinite(aux) || (!tc_.loss_scaling && !std::isfinite(grad_norm)))
    throw Error("training stopped at step " + std::to_string(step_) + ": the " +
                (std::isfinite(loss) ? "gradient norm" : "loss") + " is " +
                (std::isnan(std::isfinite(loss) ? grad_norm : loss) ? "NaN" : "infinite") +
                ". Lower train.lr, raise train.warmup_steps or set train.grad_clip; the last "
                "checkpoint (if any) is under " + run_dir().string() + ".");
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - t0_).count();
  const double tps = interval_tokens_ / std::chrono::duration<double>(now - interval_t0_).count();
  const double eta = elapsed / double(step_ - start_step_) * double(tc_.steps - step_);
  nlohmann::json rec{{"step", step_}, {"loss", loss}, {"aux_loss", aux}, {"lr", lr_},
                     {"grad_norm", grad_norm}, {"tokens_per_s", tps}, {"tokens", tokens_},
                     {"expert_load", expert_load(expert_counts_)},
                     {"peak_device_bytes", ctx_.memory().peak_total()},
                     {"peak_reserved_bytes", ctx_.memory().peak_reserved()},
                     {"peak_activation_bytes", ctx_.memory().peak(MemCategory::activations)}};
  if (tc_.loss_scaling) rec["loss_scaler"] = scaler_.to_json();
  if (sync_) {  // cumulative: the gradient exchange, and waiting for the slowest rank before it
    rec["allreduce_seconds"] = sync_->seconds();
    rec["rank_wait_seconds"] = sync_->wait_seconds();
    rec["grad_exchange_bytes"] = sync_->bytes();  // sent by this rank (rank 0), Collective::bytes_sent
    if (tc_.allreduce_overlap) rec["allreduce_early_buckets"] = sync_->early_buckets();
  }
  if (zero_) {  // cumulative: the updated parameters' exchange (and the norm's partial sums)
    rec["zero_share_seconds"] = zero_->seconds();
    rec["zero_share_bytes"] = zero_->bytes();
  }
  if (metrics_.is_open()) metrics_ << rec.dump() << "\n" << std::flush;
  if (out_) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | %s elapsed | ETA %s | peak %s",
                  (long long)step_, (long long)tc_.steps, loss, lr_, tps, clock_text(elapsed).c_str(),
                  clock_text(eta).c_str(), format_bytes(ctx_.memory().peak_total()).c_str());
    *out_ << (opt_.terminal ? "\r\033[K" : "") << line << (opt_.terminal ? "" : "\n") << std::flush;
  }
  summary_.final_loss = loss;
  ops::fill(ce_sum_, 0.0f);
  ops::fill(aux_sum_, 0.0f);
  interval_steps_ = 0;
  interval_tokens_ = 0;
  interval_t0_ = now;
}

std::optional<EvalResult> TrainingRun::evaluate() {
  if (val_tokens_.size() < 2) return std::nullopt;
  // Data parallel: eval.batches micro-batches per rank, the chunks of N·B-row batches split
  // across the ranks; rank 0 reports.
  const EvalResult r =
      ranks_ ? train::evaluate(model_, val_tokens_, L_, B_, cfg_.eval.batches * B_ * N_, tc_.objective, *ranks_)
             : train::evaluate(model_, val_tokens_, L_, B_, cfg_.eval.batches * B_, tc_.objective);
  if (metrics_.is_open())
    metrics_ << nlohmann::json{{"step", step_}, {"val_loss", r.loss}, {"val_perplexity", r.perplexity},
                             {"val_tokens", r.tokens}}.dump() << "\n" << std::flush;
  if (out_) *out_ << (opt_.terminal ? "\n" : "") << "step " << step_ << "  validation loss " << r.loss
                  << "  perplexity " << r.perplexity << "\n";
  return r;
}

nlohmann::json TrainingRun::trainer_state() const {
  nlohmann::json j{{"step", step_}, {"tokens", tokens_}, {"batcher", data::to_json(batcher_.state())},
                   {"run_id", folder_ ? folder_->run_id() : std::string()}};
  if (!init_from_.empty()) j["init_from"] = init_from_;
  if (N_ > 1) j["data_parallel"] = {{"ranks", N_}, {"batch_per_rank", B_}};
  if (tc_.loss_scaling) j["loss_scaler"] = scaler_.to_json();
  return j;
}

data::ObjectiveBatch TrainingRun::rank_rows(data::ObjectiveBatch global) const {
  if (N_ == 1) return global;
  const auto row = static_cast<std::ptrdiff_t>(L_), first = rank_ * B_, last = (rank_ + 1) * B_;
  data::ObjectiveBatch mine;
  mine.batch = B_, mine.len = L_;
  mine.inputs.assign(global.inputs.begin() + first * row, global.inputs.begin() + last * row);
  mine.targets.assign(global.targets.begin() + first * row, global.targets.begin() + last * row);
  if (!global.prefix.empty()) mine.prefix.assign(global.prefix.begin() + first, global.prefix.begin() + last);
  mine.positions.assign(global.positions.begin() + 2 * first * row, global.positions.begin() + 2 * last * row);
  return mine;
}

void TrainingRun::check_same_weights() const {
  const std::vector<uint64_t> hashes = ranks_->gather_all(weights_hash(adamw_.pack()));
  std::string differ;
  for (size_t r = 1; r < hashes.size(); ++r)
    if (hashes[r] != hashes[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (differ.empty()) return;
  char h0[32];
  std::snprintf(h0, sizeof h0, "%016llx", static_cast<unsigned long long>(hashes[0]));
  throw Error("data-parallel ranks diverged at step " + std::to_string(step_) + ": the weights of rank(s) " + differ +
              " differ from rank 0's (hash " + h0 + "); no checkpoint was written for this step. Start every rank "
              "from the same weights (the same --init-from / --resume) and config.");
}

void TrainingRun::checkpoint() {
  if (ranks_) check_same_weights();  // before anything is written
  std::optional<std::vector<std::pair<std::string, io::StTensor>>> gathered;
  if (zero_) gathered = zero_->gather_state();  // every rank's moments at rank 0
  if (!folder_) return;                          // rank 0 writes
  summary_.checkpoint = save_checkpoint(folder_->dir(), step_, cfg_.checkpoint.keep, cfg_, model_, adamw_,
                                        trainer_state(), gathered ? &*gathered : nullptr);
}

TrainSummary TrainingRun::finish() {
  if (out_ && opt_.terminal) *out_ << "\n";
  if (out_ && ctx_.profiler().enabled())
    *out_ << "device time per kernel over " << (step_ - start_step_) << " steps (MAGELLANO_PROFILE=1):\n"
          << ctx_.profiler().report_table();
  summary_.val = evaluate();
  checkpoint();
  summary_.steps = step_;
  const double total = std::chrono::duration<double>(Clock::now() - t0_).count();
  summary_.tokens_per_s = total > 0 ? double(step_ - start_step_) * B_ * L_ * tc_.grad_accum / total : 0;
  summary_.peak_device_bytes = ctx_.memory().peak_total();
  summary_.peak_reserved_bytes = ctx_.memory().peak_reserved();
  if (sync_) summary_.allreduce_seconds = sync_->seconds();
  return summary_;
}

}  // namespace

TrainSummary train(const Config& cfg, Context& ctx, const TrainOptions& opt) {
  TrainingRun run(cfg, ctx, opt);
  while (!run.done()) {
    run.optimizer_step();
    run.after_step();
  }
  return run.finish();
}

}  // namespace magellano::train
