#include "magellano/train/hf_layout.hpp"

#include <cmath>

#include "magellano/io/hf_granite_config.hpp"
#include "magellano/io/hf_jamba_config.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// "backbone.layers.7.moe.experts.3.w1.weight" -> block 7, rest "moe.experts.3.w1.weight";
// block -1 for names outside the blocks.
struct BlockName {
  int64_t block = -1;
  std::string rest;
};
BlockName split_block(const std::string& name) {
  const std::string prefix = "backbone.layers.";
  if (name.rfind(prefix, 0) != 0) return {-1, name};
  const size_t dot = name.find('.', prefix.size());
  return {std::stoll(name.substr(prefix.size(), dot - prefix.size())), name.substr(dot + 1)};
}

bool starts(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// "experts.3.w1.weight" (after "moe.") -> expert 3, "w1"; expert -1 when not an expert tensor.
struct ExpertName {
  int64_t expert = -1;
  std::string part;  // w1, w2, w3
};
ExpertName split_expert(const std::string& rest) {
  if (!starts(rest, "moe.experts.")) return {};
  const size_t a = std::string("moe.experts.").size(), dot = rest.find('.', a);
  return {std::stoll(rest.substr(a, dot - a)), rest.substr(dot + 1, 2)};
}

// A whole tensor.
std::vector<HfSlice> whole(const std::string& n) { return {HfSlice{n}}; }
std::vector<HfSlice> rows(const std::string& n, int64_t begin, int64_t end) { return {HfSlice{n, begin, end}}; }

// What Granite and Jamba name alike (the embedding, the LM head, each layer's input_layernorm and
// mixer: self_attn. or mamba.) and what each names its own way; `feed_forward` places the rest of
// block 2i + 1 (experts, shared or dense MLP) under the layer's prefix.
struct Family {
  std::string final_norm, ffn_norm, router;
  std::vector<bool> attention;  // per layer
  std::function<std::vector<HfSlice>(const std::string& layer, const std::string& rest)> feed_forward;
};

std::vector<HfSlice> locate_in(const Family& f, const std::string& name) {
  if (name == "backbone.embeddings.weight") return whole("model.embed_tokens.weight");
  if (name == "backbone.norm_f.weight") return whole(f.final_norm);
  if (name == "lm_head.weight") return whole("lm_head.weight");
  const BlockName b = split_block(name);
  if (b.block < 0) return {};
  const std::string layer = "model.layers." + std::to_string(b.block / 2) + ".";
  if (b.block % 2 == 0) {  // the mixer
    if (b.rest == "norm.weight") return whole(layer + "input_layernorm.weight");
    if (starts(b.rest, "mixer."))
      return whole(layer + (f.attention[b.block / 2] ? "self_attn." : "mamba.") + b.rest.substr(6));
    return {};
  }
  if (b.rest == "norm.weight") return whole(layer + f.ffn_norm);
  if (b.rest == "moe.gate.weight") return whole(layer + f.router);
  return f.feed_forward(layer, b.rest);
}

// The model section of a config with these values (everything else keeps its default).
Config make_config(json model) {
  json j = Config::defaults().to_json();
  for (auto it = model.begin(); it != model.end(); ++it) j["model"][it.key()] = it.value();
  return Config::from_json(j);
}

HfHybrid granite(const fs::path& dir) {
  const io::HfGraniteHybridConfig c = io::read_hf_granite_config(dir);
  const bool experts = c.num_local_experts > 0;
  std::string layers;
  for (bool attention : c.attention_layers) layers += std::string(attention ? "A" : "S") + (experts ? "E" : "F");
  json m = {{"vocab_size", c.vocab_size},
            {"dim", c.hidden_size},
            {"layers", layers},
            {"tie_embeddings", c.tie_word_embeddings},
            {"norm_eps", c.rms_norm_eps},
            {"embedding_multiplier", c.embedding_multiplier},
            {"residual_multiplier", c.residual_multiplier},
            {"logits_scaling", c.logits_scaling}};
  m["mamba2"] = {{"head_dim", c.mamba_d_head}, {"n_groups", c.mamba_n_groups}, {"d_state", c.mamba_d_state},
                 {"d_conv", c.mamba_d_conv},   {"expand", c.mamba_expand},     {"chunk_size", 0},
                 {"bias", c.mamba_proj_bias},  {"conv_bias", c.mamba_conv_bias}};
  m["attention"] = {{"heads", c.num_attention_heads},
                    {"kv_heads", c.num_key_value_heads},
                    {"rope_theta", c.rope ? c.rope_theta : 0.0},
                    {"scale", c.attention_multiplier}};
  if (experts)
    m["moe"] = {{"experts", c.num_local_experts},
                {"top_k", c.num_experts_per_tok},
                {"hidden", c.intermediate_size},
                {"router", "topk_softmax"},
                {"shared_expert_hidden", c.shared_intermediate_size},
                {"balance_coef", c.router_aux_loss_coef},
                {"z_coef", 0.0}};
  m["mlp"] = {{"hidden", c.shared_intermediate_size}};
  HfHybrid out{make_config(m), {}};
  const int64_t F = c.intermediate_size, Fs = c.shared_intermediate_size, D = c.hidden_size;
  Family family{"model.norm.weight", "post_attention_layernorm.weight", "block_sparse_moe.router.layer.weight",
                c.attention_layers, [=](const std::string& layer, const std::string& rest) -> std::vector<HfSlice> {
                  const ExpertName e = split_expert(rest);
                  if (e.expert >= 0) {
                    const std::string in = layer + "block_sparse_moe.input_linear.weight";
                    if (e.part == "w1") return rows(in, 2 * e.expert * F, 2 * e.expert * F + F);
                    if (e.part == "w3") return rows(in, 2 * e.expert * F + F, 2 * (e.expert + 1) * F);
                    return rows(layer + "block_sparse_moe.output_linear.weight", e.expert * D, (e.expert + 1) * D);
                  }
                  // The shared MLP: the MoE's shared expert, or the dense block.
                  for (const std::string mlp : {"moe.shared_expert.", "mlp."}) {
                    if (rest == mlp + "w1.weight") return rows(layer + "shared_mlp.input_linear.weight", 0, Fs);
                    if (rest == mlp + "w3.weight") return rows(layer + "shared_mlp.input_linear.weight", Fs, 2 * Fs);
                    if (rest == mlp + "w2.weight") return whole(layer + "shared_mlp.output_linear.weight");
                  }
                  return {};
                }};
  out.locate = [family](const std::string& name) { return locate_in(family, name); };
  return out;
}

HfHybrid jamba(const fs::path& dir) {
  const io::HfJambaConfig c = io::read_hf_jamba_config(dir);
  std::string layers;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers += std::string(c.attention_layers[i] ? "A" : "M") + (c.expert_layers[i] ? "E" : "F");
  json m = {{"vocab_size", c.vocab_size},
            {"dim", c.hidden_size},
            {"layers", layers},
            {"tie_embeddings", c.tie_word_embeddings},
            {"norm_eps", c.rms_norm_eps},
            {"d_state", c.mamba_d_state},
            {"d_conv", c.mamba_d_conv},
            {"expand", c.mamba_expand},
            {"dt_rank", c.dt_rank()},
            {"mamba_inner_norms", true},
            {"mamba_proj_bias", c.mamba_proj_bias},
            {"mamba_conv_bias", c.mamba_conv_bias}};
  m["attention"] = {{"heads", c.num_attention_heads}, {"kv_heads", c.num_key_value_heads}, {"rope_theta", 0.0}};
  m["moe"] = {{"experts", c.num_experts > 1 ? c.num_experts : 2},  // unused without expert layers
              {"top_k", c.num_experts > 1 ? c.num_experts_per_tok : 1},
              {"hidden", c.intermediate_size},
              {"router", "softmax_topk"},
              {"normalize_top_k", false},
              {"balance_coef", c.router_aux_loss_coef},
              {"z_coef", 0.0}};
  m["mlp"] = {{"hidden", c.intermediate_size}};
  HfHybrid out{make_config(m), {}};
  const int64_t F = c.intermediate_size, D = c.hidden_size;
  Family family{"model.final_layernorm.weight", "pre_ff_layernorm.weight", "feed_forward.router.weight",
                c.attention_layers, [=](const std::string& layer, const std::string& rest) -> std::vector<HfSlice> {
                  const std::string ff = layer + "feed_forward.";
                  const ExpertName e = split_expert(rest);
                  if (e.expert >= 0) {  // per-expert tensors (the published files), else the fused pair
                    const std::string per = ff + "experts." + std::to_string(e.expert) + ".";
                    const std::string in = ff + "experts.gate_up_proj", out = ff + "experts.down_proj";
                    if (e.part == "w1") return {HfSlice{per + "gate_proj.weight"}, HfSlice{in, 2 * e.expert * F, 2 * e.expert * F + F}};
                    if (e.part == "w3")
                      return {HfSlice{per + "up_proj.weight"}, HfSlice{in, 2 * e.expert * F + F, 2 * (e.expert + 1) * F}};
                    return {HfSlice{per + "down_proj.weight"}, HfSlice{out, e.expert * D, (e.expert + 1) * D}};
                  }
                  if (rest == "mlp.w1.weight") return whole(ff + "gate_proj.weight");
                  if (rest == "mlp.w3.weight") return whole(ff + "up_proj.weight");
                  if (rest == "mlp.w2.weight") return whole(ff + "down_proj.weight");
                  return {};
                }};
  out.locate = [family](const std::string& name) { return locate_in(family, name); };
  return out;
}

}  // namespace

bool is_hf_hybrid_dir(const fs::path& dir) { return io::is_hf_granite_dir(dir) || io::is_hf_jamba_dir(dir); }

HfHybrid read_hf_hybrid(const fs::path& dir) {
  const bool is_granite = io::is_hf_granite_dir(dir);
  try {
    return is_granite ? granite(dir) : jamba(dir);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("Hugging Face config", 0) == 0) throw;
    throw Error(what + " (from the Hugging Face config " + (dir / "config.json").string() + ")");
  }
}

}  // namespace magellano::train
