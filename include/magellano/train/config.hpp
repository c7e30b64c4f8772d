// The training configuration: one JSON document with sections model, data, train, eval,
// checkpoint and device. Every key is validated (unknown keys and wrong types are errors that
// name the key path; values are range-checked). Keys, types, defaults and meanings are
// documented in ONE place, configs/README.md; the presets live beside it.
//
// Loading = defaults ← the file ← each `--set key.path=value` in order, then validation.
// After loading, the derived "0 = automatic" values (model.dt_rank, model.moe.hidden) hold
// their resolved numbers, so to_json() (what a checkpoint saves) is self-contained and
// from_json(to_json()) gives back the same Config.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "magellano/data/objective.hpp"
#include "magellano/nn/attention.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/nn/lora.hpp"
#include "magellano/nn/mamba.hpp"
#include "magellano/nn/mamba2.hpp"
#include "magellano/nn/mlp.hpp"
#include "magellano/nn/moe.hpp"
#include "magellano/ops/expert_mlp.hpp"
#include "magellano/runtime/compute_dtype.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::train {

enum class LayerKind { mamba, mamba2, attention, moe, mlp };

// "MME", "(MMME)x9MMM", nested groups "((ME)x2M)x3": 'M' = Mamba block, 'S' = Mamba2 (SSD)
// block, 'A' = attention block, 'E' = MoE block, 'F' = dense MLP block, a group in parentheses, "xN" repeats the preceding letter or group
// N >= 1 times. Spaces are ignored. Throws Error naming `what` (e.g. "'model.layers'") and the
// position of the problem.
std::vector<LayerKind> parse_layer_pattern(const std::string& pattern,
                                           const std::string& what = "layer pattern");
// A list of "mamba" / "mamba2" / "attention" / "moe" / "mlp" (or "M" / "S" / "A" / "E" / "F").
std::vector<LayerKind> parse_layer_list(const nlohmann::json& list,
                                        const std::string& what = "layer list");
// One letter per layer: "MMME...", "SSSE...".
std::string layer_string(const std::vector<LayerKind>& layers);

// How AdamW rounds an updated fp16 parameter.
enum class Fp16Rounding { stochastic, nearest };

// The names of gradient checkpointing's presets and their blocks per segment.
struct CheckpointingPreset {
  const char* name;
  int64_t blocks_per_segment;
};
inline constexpr CheckpointingPreset kCheckpointingPresets[] = {
    {"none", 0}, {"balanced", 2}, {"aggressive", 4}};

// The names the config file uses for its choices ("fp32", "nf4", "stochastic", "swiglu", ...).
// A number as the config's messages write it: 65536, 0.001.
std::string number_str(double x);
const char* config_name(DType storage);  // f32, f16
const char* config_name(nn::WeightStorage storage);
const char* config_name(Fp16Rounding rounding);
const char* config_name(ComputeDType d);  // fp32, tf32, bf16
const char* config_name(optim::StateFormat format);        // fp32, int8
const char* config_name(optim::StatePlacement placement);  // none (device), host
const char* config_name(ops::ExpertActivation activation);
const char* config_name(nn::MoERouter router);  // softmax_topk, topk_softmax
const char* config_name(data::Objective objective);  // causal, prefix_lm, blank_infilling
const char* config_name(data::InfillMode mode);       // spans, document, single
const char* config_name(data::InfillPositions p);     // sequential, glm2d

struct MoESection {
  int64_t experts = 8;
  int64_t top_k = 2;
  int64_t hidden = 0;  // F; 0 = round(2.75·dim) to a multiple of 64 (resolved on load)
  ops::ExpertActivation activation = ops::ExpertActivation::swiglu;  // "swiglu" | "gelu"
  double balance_coef = 0.01;
  double z_coef = 0.001;
  nn::MoERouter router = nn::MoERouter::softmax_topk;  // "softmax_topk" | "topk_softmax"
  bool normalize_top_k = true;  // softmax_topk only (false: Jamba's unrenormalised weights)
  int64_t shared_expert_hidden = 0;  // F_s of the shared expert; 0 = none
  bool operator==(const MoESection&) const = default;
};

// model.mlp: the dense MLP blocks (nn::MlpBlock, nn::MlpConfig).
struct MlpSection {
  // F; 0 = model.moe.hidden (as Jamba's dense and expert MLPs), kept 0 in to_json and resolved
  // by ModelConfig::mlp_config(), so it follows model.moe.hidden
  int64_t hidden = 0;
  ops::ExpertActivation activation = ops::ExpertActivation::swiglu;  // "swiglu" | "gelu"
  bool operator==(const MlpSection&) const = default;
};

// model.mamba2: the Mamba2 ('S') blocks (nn::Mamba2Config).
struct Mamba2Section {
  int64_t head_dim = 64;  // P; must divide expand · dim
  int64_t n_groups = 1;   // G; must divide the head count H = expand · dim / head_dim
  int64_t d_state = 128;  // N
  int64_t d_conv = 4;     // K
  int64_t expand = 2;     // Di = expand · dim
  int64_t chunk_size = 0;  // SSD steps per chunk; 0 = the device's default
  // time_step_limit [lo, hi]: the clamp of every step size; hi = inf (written null) = no upper clamp.
  double dt_lo = 0.0, dt_hi = std::numeric_limits<double>::infinity();
  double time_step_min = 0.001, time_step_max = 0.1, time_step_floor = 1e-4;
  bool bias = false;      // in_proj / out_proj biases
  bool conv_bias = true;  // conv1d bias
  int64_t inner(int64_t dim) const { return expand * dim; }
  // Throws a config error naming the key unless head_dim divides expand · dim, n_groups divides
  // the head count and time_step_min <= time_step_max (src/train/mamba2_section.cpp).
  void check(int64_t dim) const;
  bool operator==(const Mamba2Section&) const = default;
};

// model.attention: the attention ('A') blocks (nn::AttentionConfig).
struct AttentionSection {
  int64_t heads = 8;
  int64_t kv_heads = 0;    // 0 = heads
  int64_t head_dim = 0;    // 0 = dim / heads
  double rope_theta = 10000.0;  // 0 = no rotary positions (NoPE)
  double scale = 0.0;           // the score scale; 0 = 1/sqrt(head_dim)
  // Throws a config error naming the key unless the heads divide dim (without head_dim),
  // kv_heads divides heads and the head width is one the kernels run (src/train/attention_section.cpp).
  void check(int64_t dim) const;
  bool operator==(const AttentionSection&) const = default;
};

struct ModelConfig {
  int64_t vocab_size = 50257;
  int64_t dim = 768;
  std::string layers = "(MMME)x3M";  // as written (a list is stored as one letter per layer)
  std::vector<LayerKind> pattern;    // parsed `layers` (filled on load)
  int64_t d_state = 16;
  int64_t d_conv = 4;
  int64_t expand = 2;
  int64_t dt_rank = 0;  // 0 = ceil(dim / 16) (resolved on load)
  // Mamba ('M') block options of Jamba's mixer (nn::MambaConfig): RMSNorms of dt, B and C
  // (eps = norm_eps), in_proj / out_proj biases, the conv1d bias.
  bool mamba_inner_norms = false;
  // Prefix-LM: Mamba ('M') blocks also scan the prefix in reverse (nn::MambaConfig).
  bool bidirectional_prefix = false;
  // Blank infilling's positions (data/blank_infilling.hpp): sequential, or GLM's 2D ids (glm2d),
  // which make the attention blocks rotate half of each head by the position id and half by the
  // block id for every text (ordinary text has block id 0), hence a model option.
  data::InfillPositions infill_positions = data::InfillPositions::sequential;
  bool mamba_proj_bias = false;
  bool mamba_conv_bias = true;
  bool tie_embeddings = true;
  double norm_eps = 1e-5;
  int64_t scan_chunk = 64;
  Mamba2Section mamba2;
  AttentionSection attention;
  MoESection moe;
  MlpSection mlp;
  // Granite's scalings: the embedding output ×, each block's residual branch ×, the logits ÷.
  double embedding_multiplier = 1.0, residual_multiplier = 1.0, logits_scaling = 1.0;

  int64_t num_mamba() const;   // Mamba ('M') blocks
  int64_t num_mamba2() const;  // Mamba2 ('S') blocks
  int64_t num_attention() const;  // attention ('A') blocks
  int64_t num_mlp() const;        // dense MLP ('F') blocks
  int64_t num_moe() const;
  nn::MambaConfig mamba_config() const;  // num_layers = number of layers (for out_proj scale), norm_eps
  nn::Mamba2Config mamba2_config() const;  // the same, and norm_eps
  nn::AttentionConfig attention_config() const;  // the same
  nn::MoEConfig moe_config() const;
  nn::MlpConfig mlp_config() const;  // the dense MLP blocks' (dim, model.mlp.hidden, activation)
  bool operator==(const ModelConfig&) const = default;
};

struct DataConfig {
  std::optional<std::string> train;      // token file; required for training
  std::optional<std::string> val;        // token file or none
  std::optional<std::string> tokenizer;  // folder or none
  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 8;  // sequences per micro-batch
  int64_t seq_len = 512;   // context
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  double lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 100;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0 = off
  int64_t seed = 1234;
  int64_t log_every = 10;
  // "fp32" | "fp16" (f32 | f16): storage of the matrix weights and their gradients
  // (nn::ModelSpec::weight_dtype); fp16 needs loss_scaling and excludes LoRA.
  DType param_dtype = DType::f32;
  // "stochastic" | "nearest": how AdamW rounds an updated fp16 parameter (param_dtype "fp16";
  // optim::AdamWConfig::stochastic_rounding).
  Fp16Rounding fp16_rounding = Fp16Rounding::stochastic;
  // "fp32" | "tf32" | "bf16": the operands of matrix products (runtime/compute_dtype.hpp), fp32
  // accumulation; on a device without a matrix engine every product stays fp32.
  ComputeDType compute_dtype = ComputeDType::fp32;
  // "fp32" | "int8": AdamW's moments in fp32 (8 bytes per parameter) or bitsandbytes' 8-bit
  // blockwise format (2 bytes and an absmax per 256; optim::AdamWConfig::states).
  optim::StateFormat optimizer_states = optim::StateFormat::fp32;
  // "none" | "host": the moments in device memory, or in host memory streamed through the
  // device in pages each step (optim::AdamWConfig::offload; bit-identical results).
  optim::StatePlacement optimizer_offload = optim::StatePlacement::device;
  // Blocks per checkpointed segment: 0 = off, or any k >= 1; the file may name the presets
  // of kCheckpointingPresets ("none" = 0, "balanced" = 2, "aggressive" = 4).
  int64_t gradient_checkpointing = 0;
  // "fp32" | "fp16" (f32 | f16): storage of the activations kept across the forward, i.e. the
  // segment inputs of gradient checkpointing (fp16 needs checkpointing; nn::ModelSpec::
  // checkpoint_inputs_fp16).
  DType activation_dtype = DType::f32;
  // Dynamic loss scaling (see train/loss_scaler.hpp).
  bool loss_scaling = false;
  double loss_scale_init = 65536.0;
  int64_t loss_scale_growth_interval = 2000;
  // Data parallel (mpirun -np N): exchange gradients as bfloat16 instead of fp32 (half the bytes;
  // each partial sum rounded to bf16; train/gradient_sync.hpp). No effect on one process.
  bool allreduce_bf16 = false;
  // Data parallel: start each gradient bucket's exchange during the backward, as soon as its
  // gradients are final (train/gradient_sync.hpp; bit-identical sums). No effect on one process.
  bool allreduce_overlap = false;
  // Data parallel: values per gradient bucket (4 Mi = 16 MiB of fp32 per host buffer).
  int64_t allreduce_bucket = int64_t(1) << 22;
  // Data parallel: 0 = every rank keeps all of AdamW's moments; 1 = ZeRO stage 1, each rank keeps
  // and updates a contiguous 1/N share of them and sends its updated parameters to the others
  // (train/zero_shard.hpp; the same results, bit for bit). No effect on one process.
  int64_t zero_stage = 0;
  // "causal" | "prefix_lm" | "blank_infilling" (or a mix), the prefix's sampled fraction range and separator token, the infilling spans
  // (data/objective.hpp); evaluation during training uses the same objective.
  data::ObjectiveConfig objective;
  bool operator==(const TrainConfig&) const = default;
};

struct LoRASection {
  int64_t rank = 0;  // 0 = off (full training)
  double alpha = 16.0;
  double dropout = 0.0;
  std::vector<std::string> target_modules = {"in_proj", "x_proj", "dt_proj", "out_proj"};
  // Storage of the frozen base Linear weights: "fp32" | "fp16" | "nf4" | "int4".
  nn::WeightStorage base_precision = nn::WeightStorage::f32;
  // int4: columns per group when the base is quantized from fp32 (a width it does not divide
  // stays fp32); a base read from an int4 file keeps the file's groups.
  int64_t int4_group_size = 128;
  bool enabled() const { return rank > 0; }
  bool operator==(const LoRASection&) const = default;
};

struct EvalConfig {
  int64_t every = 0;    // steps; 0 = only at the end
  int64_t batches = 20;
  bool operator==(const EvalConfig&) const = default;
};

struct CheckpointConfig {
  std::string dir = "checkpoints";
  int64_t every = 0;  // steps; 0 = only at the end
  int64_t keep = 3;   // newest checkpoints kept
  bool operator==(const CheckpointConfig&) const = default;
};

struct Config {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  LoRASection lora;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  std::string device;  // "" = default (--device syntax: P:D, cpu, gpu or part of a name)

  // The defaults with every derived value resolved (what an empty JSON object gives).
  static Config defaults();
  // Validates every key (unknown keys, types, ranges) and resolves derived values.
  static Config from_json(const nlohmann::json& j);
  // The effective config, every key present.
  nlohmann::json to_json() const;
  // Throws unless data.train is set (training needs it; `info` does not).
  void require_training_data() const;
  bool operator==(const Config&) const = default;
};

// Applies "key.path=value" to a config document (value: JSON when it parses, else a string).
// The key path must exist in the schema. Does not validate the value (from_json does).
void apply_set(nlohmann::json& doc, const std::string& assignment);

// Reads `path` (JSON, comments allowed), applies `sets` in order, validates. Errors name the
// file or the --set.
Config load_config(const std::string& path, const std::vector<std::string>& sets = {});
// load_config on a config's text; `path` names it in errors.
Config parse_config(std::string_view text, const std::string& path, const std::vector<std::string>& sets = {});

// Every key path of the schema, leaves only, in documentation order ("model.vocab_size", ...).
std::vector<std::string> config_keys();

}  // namespace magellano::train
