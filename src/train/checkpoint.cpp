#include "magellano/train/checkpoint.hpp"

#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/hf_mamba2_config.hpp"
#include "magellano/io/hf_mamba_config.hpp"
#include "magellano/io/int4_safetensors.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/nf4_safetensors.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/train/adapter.hpp"
#include "magellano/train/device_fit.hpp"
#include "magellano/train/trainer_state.hpp"
#include "magellano/runtime/error.hpp"

#include <cmath>
#include <map>
#include <set>

namespace magellano::train {
namespace fs = std::filesystem;

namespace {

// A training config whose model section mirrors a Hugging Face MambaConfig (use_bias: in_proj /
// out_proj biases, use_conv_bias: conv1d's, as transformers' MambaMixer).
Config config_from_hf(const io::HfMambaConfig& hf, const fs::path& dir) {
  nlohmann::json j = Config::defaults().to_json();
  auto& m = j["model"];
  m["vocab_size"] = hf.vocab_size;
  m["dim"] = hf.hidden_size;
  m["layers"] = "(M)x" + std::to_string(hf.num_hidden_layers);
  m["d_state"] = hf.state_size;
  m["d_conv"] = hf.conv_kernel;
  m["expand"] = hf.expand;
  m["dt_rank"] = hf.time_step_rank;
  m["tie_embeddings"] = hf.tie_word_embeddings;
  m["norm_eps"] = hf.layer_norm_epsilon;
  m["mamba_proj_bias"] = hf.use_bias;
  m["mamba_conv_bias"] = hf.use_conv_bias;
  try {
    return Config::from_json(j);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (from the Hugging Face config " + (dir / "config.json").string() + ")");
  }
}

// A training config whose model section mirrors a Hugging Face Mamba2Config: every block an
// 'S' block. chunk_size is not carried over: it is the tile of mamba_ssm's Triton kernels (256
// by default, which our kernels would halve to fit a GPU's local memory) and changes results
// only by rounding, so the device's tuned default chunk runs instead.
Config config_from_hf(const io::HfMamba2Config& hf) {
  nlohmann::json j = Config::defaults().to_json();
  auto& m = j["model"];
  m["vocab_size"] = hf.vocab_size;
  m["dim"] = hf.hidden_size;
  m["layers"] = "(S)x" + std::to_string(hf.num_hidden_layers);
  m["tie_embeddings"] = hf.tie_word_embeddings;
  m["norm_eps"] = hf.layer_norm_epsilon;
  auto& s = m["mamba2"];
  s["head_dim"] = hf.head_dim;
  s["n_groups"] = hf.n_groups;
  s["d_state"] = hf.state_size;
  s["d_conv"] = hf.conv_kernel;
  s["expand"] = hf.expand;
  s["chunk_size"] = 0;
  s["time_step_limit"] = {hf.time_step_lo, std::isinf(hf.time_step_hi) ? nlohmann::json() : nlohmann::json(hf.time_step_hi)};
  s["time_step_min"] = hf.time_step_min;
  s["time_step_max"] = hf.time_step_max;
  s["time_step_floor"] = hf.time_step_floor;
  s["bias"] = hf.use_bias;
  s["conv_bias"] = hf.use_conv_bias;
  return Config::from_json(j);
}
}  // namespace

nn::ModelSpec model_spec(const ModelConfig& m) {
  nn::ModelSpec s;
  s.vocab_size = m.vocab_size;
  s.dim = m.dim;
  s.layers = layer_string(m.pattern);
  s.mamba = m.mamba_config();
  s.mamba2 = m.mamba2_config();
  s.attention = m.attention_config();
  s.moe = m.moe_config();
  s.mlp = m.mlp_config();
  s.embedding_multiplier = static_cast<float>(m.embedding_multiplier);
  s.residual_multiplier = static_cast<float>(m.residual_multiplier);
  s.logits_scaling = static_cast<float>(m.logits_scaling);
  s.tie_embeddings = m.tie_embeddings;
  s.norm_eps = static_cast<float>(m.norm_eps);
  return s;
}

nn::ModelSpec model_spec(const Config& c) {
  nn::ModelSpec s = model_spec(c.model);
  if (c.lora.enabled()) {
    s.lora.rank = c.lora.rank;
    s.lora.alpha = c.lora.alpha;
    s.lora.dropout = c.lora.dropout;
    s.lora.targets = c.lora.target_modules;
    s.base_storage = c.lora.base_precision;
    s.int4_group_size = c.lora.int4_group_size;
  }
  s.weight_dtype = c.train.param_dtype;
  s.checkpoint_every = c.train.gradient_checkpointing;
  s.checkpoint_inputs_fp16 = c.train.activation_dtype == DType::f16;
  return s;
}

void load_weights(const fs::path& path, const nn::Model& model, const HfLocator& locate) {
  load_weights(io::SafetensorsSet::open(path), model, locate);
}

void load_weights(const io::SafetensorsSet& weights, const nn::Model& model, const HfLocator& locate) {
  // Where each parameter is: itself, or (a Hugging Face hybrid) the first candidate the files hold.
  auto find = [&](const std::string& name) -> HfSlice {
    if (!locate) {
      if (!io::holds_weight(weights, name))
        throw Error(weights.path().string() + " has no tensor '" + name + "': it is not a checkpoint of this "
                    "model (check the config's model section).");
      return HfSlice{name};
    }
    const std::vector<HfSlice> where = locate(name);
    for (const HfSlice& c : where)
      if (io::holds_weight(weights, c.name)) return c;
    throw Error(weights.path().string() + " has no tensor '" + (where.empty() ? name : where.front().name) +
                "' (parameter " + name + "): the folder does not match its config.json.");
  };
  Context& ctx = model.parameters().front().tensor.ctx();
  // Weights stored NF4 in the file (`magellano quantize`): loaded as they are into an NF4
  // Linear, dequantized for an fp32 / fp16 one.
  std::set<std::string> nf4_in_file;
  for (const auto& n : io::nf4_weight_names(weights)) nf4_in_file.insert(n);
  auto read = [&](const HfSlice& at, const Tensor& dst) {
    if (io::is_int4_weight(weights, at.name)) {  // int4 in the file (`magellano quantize --format int4`): dequantized
      io::load_int4_into(weights, at.name, dst, at.row_begin, at.row_end);
    } else if (at.whole()) {
      io::load_into(weights, at.name, dst);
    } else if (nf4_in_file.count(at.name)) {  // rows of a quantized packed weight: dequantized whole, then cut
      const Tensor full = ops::dequantize_nf4(io::load_nf4(ctx, weights, at.name, MemCategory::scratch), MemCategory::scratch);
      const int64_t cols = full.shape().dims().back();
      const std::vector<float> all = full.to_host();
      if (dst.numel() != (at.row_end - at.row_begin) * cols || dst.shape().dims().back() != cols)
        throw Error(weights.path().string() + ": NF4 weight '" + at.name + "' " + full.shape().str() +
                    " does not give the model's " + dst.shape().str() + " in rows [" + std::to_string(at.row_begin) +
                    ", " + std::to_string(at.row_end) + ").");
      const std::vector<float> rows(all.begin() + at.row_begin * cols, all.begin() + at.row_end * cols);
      ops::copy_into(dst.dtype() == DType::f32 ? Tensor::from_host(ctx, dst.shape(), rows)
                                               : ops::cast(Tensor::from_host(ctx, dst.shape(), rows), dst.dtype()),
                     dst);
    } else {
      io::load_rows_into(weights, at.name, at.row_begin, at.row_end, dst);
    }
  };
  std::map<std::string, nn::Linear*> by_weight;
  for (const auto& l : const_cast<nn::Model&>(model).linears()) by_weight[l.path + ".weight"] = l.linear;
  for (const auto& p : model.parameters()) {
    const HfSlice at = find(p.name);
    if (at.whole() && nf4_in_file.count(at.name)) {
      const ops::NF4Weight q = io::load_nf4(ctx, weights, at.name, MemCategory::scratch);
      by_weight.at(p.name)->set_weight(ops::dequantize_nf4(q, MemCategory::scratch));
      continue;
    }
    read(at, p.tensor);
  }
  // NF4 and int4 Linears are not tensors of their own: an fp32 / fp16 weight in the file is read
  // and quantized one at a time. An int4 weight with fp16 scales (what `magellano quantize
  // --format int4` writes) goes to an int4 Linear as it is (its rows, for a slice of a packed
  // weight: int4 rows are independent); other scale types are dequantized and quantized again.
  for (const auto& [name, lin] : by_weight) {
    if (lin->storage() == nn::WeightStorage::int4) {
      const HfSlice at = find(name);
      if (io::is_int4_weight(weights, at.name)) {
        const quant::Int4Weight h = io::load_int4(weights, at.name);
        if (h.scale_type == quant::FloatType::f16) {
          const int64_t r0 = at.row_begin, r1 = at.row_end < 0 ? h.rows : at.row_end;
          const int64_t words = h.words_per_row(), groups = h.groups_per_row();
          if (r0 < 0 || r1 > h.rows || r0 >= r1)
            throw Error(weights.path().string() + ": int4 weight '" + at.name + "' has " + std::to_string(h.rows) +
                        " rows, the model reads rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ").");
          const std::vector<int32_t> packed(h.packed.begin() + r0 * words, h.packed.begin() + r1 * words);
          const std::vector<float> scales(h.scales.begin() + r0 * groups, h.scales.begin() + r1 * groups);
          lin->set_int4(ops::int4_from_host(ctx, r1 - r0, h.cols, h.group_size, packed, scales,
                                            weights.path().string() + ": int4 weight '" + at.name + "'"));
          continue;
        }
      }
      Tensor w = Tensor::empty(ctx, Shape{lin->out_features(), lin->in_features()}, DType::f32, MemCategory::scratch);
      read(at, w);
      lin->set_weight(w);
      continue;
    }
    if (lin->storage() != nn::WeightStorage::nf4) continue;
    const HfSlice at = find(name);
    if (at.whole() && nf4_in_file.count(at.name)) {
      ops::NF4Weight q = io::load_nf4(ctx, weights, at.name);
      if (q.shape != Shape{lin->out_features(), lin->in_features()})
        throw Error(weights.reader(at.name).path().string() + ": NF4 weight '" + at.name + "' has shape " +
                    q.shape.str() + ", the model expects (" + std::to_string(lin->out_features()) + ", " +
                    std::to_string(lin->in_features()) + ").");
      *lin->nf4 = std::move(q);
      continue;
    }
    Tensor w = Tensor::empty(ctx, Shape{lin->out_features(), lin->in_features()}, DType::f32, MemCategory::scratch);
    read(at, w);
    lin->set_weight(w);
  }
}

HfLocator weights_locator(const fs::path& dir) { return is_hf_hybrid_dir(dir) ? read_hf_hybrid(dir).locate : HfLocator(); }

CheckpointSource read_checkpoint_config(const fs::path& dir) {
  if (!fs::is_directory(dir))
    throw Error("checkpoint '" + dir.string() + "' is not a directory: pass a folder written by "
                "`magellano train` or a Hugging Face Mamba, Mamba2, Granite 4.0-H or Jamba model folder.");
  CheckpointSource out;
  if (io::is_hf_mamba_dir(dir)) {
    out.config = config_from_hf(io::read_hf_mamba_config(dir), dir);
    out.hugging_face = true;
  } else if (io::is_hf_mamba2_dir(dir)) {
    const io::HfMamba2Config hf = io::read_hf_mamba2_config(dir);
    try {
      out.config = config_from_hf(hf);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (from the Hugging Face config " + (dir / "config.json").string() + ")");
    }
    out.hugging_face = true;
  } else if (is_hf_hybrid_dir(dir)) {
    HfHybrid hybrid = read_hf_hybrid(dir);
    out.config = std::move(hybrid.config);
    out.locate = std::move(hybrid.locate);
    out.hugging_face = true;
  } else {
    nlohmann::json j = io::read_json(dir / "config.json", "checkpoint config");
    if (j.is_object()) j.erase("quantization_config");  // `magellano quantize` output: the NF4 weights load as they are
    try {
      out.config = Config::from_json(j);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (in " + (dir / "config.json").string() + ")");
    }
  }
  io::check_quantization_config(dir);  // NF4 or int4 weights load below; any other quantization is refused here
  return out;
}

void check_same_function(const ModelConfig& run, const ModelConfig& source, const fs::path& dir) {
  const std::string where = dir.string() + ": ";
  auto rope = [](const AttentionSection& a) {
    return a.rope_theta == 0.0 ? std::string("no rotary positions (NoPE)") : "rope_theta " + number_str(a.rope_theta);
  };
  if (run.num_attention() > 0 && source.num_attention() > 0 && run.attention.rope_theta != source.attention.rope_theta)
    throw Error(where + "its attention has " + rope(source.attention) + ", the config's 'model.attention.rope_theta' gives " +
                rope(run.attention) + "; set it to " + number_str(source.attention.rope_theta) +
                " (the weights were trained for those positions).");
  if (run.num_attention() > 0 && source.num_attention() > 0 &&
      run.attention_config().score_scale() != source.attention_config().score_scale())
    throw Error(where + "its attention scores are scaled by " + number_str(source.attention_config().score_scale()) +
                ", the config's by " + number_str(run.attention_config().score_scale()) +
                "; set 'model.attention.scale' to match.");
  const std::pair<const char*, std::pair<double, double>> multipliers[] = {
      {"embedding_multiplier", {run.embedding_multiplier, source.embedding_multiplier}},
      {"residual_multiplier", {run.residual_multiplier, source.residual_multiplier}},
      {"logits_scaling", {run.logits_scaling, source.logits_scaling}}};
  for (const auto& [key, values] : multipliers)
    if (values.first != values.second)
      throw Error(where + "its " + key + " is " + number_str(values.second) + ", the config's 'model." + key + "' " +
                  number_str(values.first) + "; set it to match.");
  if (run.num_moe() > 0 && source.num_moe() > 0 &&
      (run.moe.router != source.moe.router || run.moe.normalize_top_k != source.moe.normalize_top_k))
    throw Error(where + "its MoE routing is " + config_name(source.moe.router) +
                (source.moe.normalize_top_k ? "" : " without renormalisation") + ", the config's " +
                config_name(run.moe.router) + (run.moe.normalize_top_k ? "" : " without renormalisation") +
                "; set 'model.moe.router' and 'model.moe.normalize_top_k' to match.");
}

LoadedModel load_model(const fs::path& dir, Context& ctx, const LoRASection* lora) {
  CheckpointSource read = read_checkpoint_config(dir);
  LoadedModel out;
  out.config = std::move(read.config);
  out.hugging_face = read.hugging_face;
  out.locate = std::move(read.locate);
  out.config.train.gradient_checkpointing = 0;
  const bool lora_checkpoint = out.config.lora.enabled() && !io::SafetensorsSet::present(dir);
  if (lora) out.config.lora = *lora;
  nn::ModelSpec spec = model_spec(out.config);
  Config estimate = out.config;
  if (!lora && !lora_checkpoint && out.config.train.param_dtype == DType::f32) {
    // Weights stored int4 with fp16 scales (`magellano quantize --format int4`) stay int4 on the
    // device for eval and generate (ops::int4_linear), in the file's group size.
    const io::SafetensorsSet weights = io::SafetensorsSet::open(dir);
    const std::vector<std::string> int4 = io::int4_weight_names(weights);
    bool f16 = !int4.empty();
    for (const auto& n : int4)  // a missing scale: load_weights below names it
      f16 = f16 && weights.contains(io::int4_scale_name(n)) && weights.dtype(io::int4_scale_name(n)) == io::StDType::F16;
    if (f16) {
      spec.base_storage = nn::WeightStorage::int4;
      spec.int4_group_size = io::load_int4(weights, int4.front()).group_size;
      // The Linears the file holds int4; the others stay as the file has them (fp32).
      spec.int4_select = [names = std::set<std::string>(int4.begin(), int4.end()), locate = out.locate](const std::string& path) {
        if (!locate) return names.count(path + ".weight") > 0;
        for (const HfSlice& c : locate(path + ".weight"))
          if (names.count(c.name)) return true;
        return false;
      };
      // Its memory: the frozen-base estimate of an int4 base without adapters (every Linear int4).
      estimate.lora.rank = 1;
      estimate.lora.target_modules = {};
      estimate.lora.base_precision = nn::WeightStorage::int4;
      estimate.lora.int4_group_size = spec.int4_group_size;
    }
  }
  require_fit(inference_demand(estimate, 0, 0, ""), ctx.device(), dir.string());
  out.model = std::make_unique<nn::Model>(ctx, spec, out.config.train.seed);
  if (!lora_checkpoint) {
    load_weights(dir, *out.model, out.locate);
    return out;
  }
  // A LoRA training checkpoint: the base is the run's (--init-from weights, or the seed's
  // initialisation), the adapter is in the directory.
  const TrainerState state = read_trainer_state(dir);
  if (state.init_from) {
    const fs::path base = *state.init_from;
    if (!io::SafetensorsSet::present(base))
      throw Error(dir.string() + " is a LoRA checkpoint whose base model " + base.string() +
                  " is gone; restore it or merge the adapter into a copy you kept.");
    load_weights(base, *out.model, weights_locator(base));
  }
  if (!lora) load_adapter_weights(dir, *out.model);
  return out;
}

fs::path save_checkpoint(const fs::path& parent, int64_t step, int64_t keep, const Config& config,
                         const nn::Model& model, const optim::AdamW& optimizer, const nlohmann::json& trainer_state,
                         const std::vector<std::pair<std::string, io::StTensor>>* optimizer_state) {
  const fs::path path =
      io::write_checkpoint_dir(parent, io::checkpoint_name(step), [&](const fs::path& dir) {
        // The trainer state first: it names the run, so a folder left by a kill during this
        // write is recognised as the run's own (RunFolder removes it on the next start).
        nlohmann::json state = trainer_state;
        state["format"] = kTrainerStateFormat;
        state["optimizer_steps"] = optimizer.step_count();
        io::write_json_atomically(dir / "trainer_state.json", state);
        io::write_json_atomically(dir / "config.json", config.to_json());
        std::vector<std::pair<std::string, io::StTensor>> weights;
        if (config.lora.enabled()) {  // the adapter only (the base is frozen)
          save_adapter_weights(dir / "adapter_model.safetensors", model);
          io::write_json_atomically(dir / "adapter_config.json",
                                    adapter_config_json(config.lora, trainer_state.value("init_from", "")));
        } else {
          for (const auto& p : model.parameters()) weights.emplace_back(p.name, io::to_st(p.tensor));
          io::write_safetensors(dir / "model.safetensors", weights, {{"format", "pt"}});
        }
        io::write_safetensors(dir / "optimizer.safetensors", optimizer_state ? *optimizer_state : optimizer.state_st());
      });
  io::prune_checkpoints(parent, static_cast<size_t>(std::max<int64_t>(keep, 1)), path);
  return path;
}

TrainerState load_training_state(const fs::path& dir, const nn::Model& model, optim::AdamW& optimizer) {
  const TrainerState state = read_trainer_state(dir);  // checked before anything is loaded
  if (fs::exists(dir / "adapter_model.safetensors") && !io::SafetensorsSet::present(dir))
    load_adapter_weights(dir, model);
  else
    load_weights(dir, model);
  optimizer.load_state(io::SafetensorsReader::open(dir / "optimizer.safetensors"));
  optimizer.set_step_count(state.optimizer_steps);
  return state;
}

}  // namespace magellano::train
