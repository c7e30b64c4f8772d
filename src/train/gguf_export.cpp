// export_gguf: checks that llama.cpp has the model's architecture, plans every tensor (GGUF name,
// ggml dims, type, how its values come from our parameters), adds the metadata and the tokenizer,
// then streams the tensors one at a time from the device into the file.
#include "magellano/train/gguf_export.hpp"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <unordered_map>

#include "magellano/data/gguf_vocab.hpp"
#include "magellano/io/ggml_quants.hpp"
#include "magellano/nn/linear.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace fs = std::filesystem;
using io::GgmlType;

namespace {

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

[[noreturn]] void refuse(const std::string& what) {
  throw Error("GGUF export: " + what);
}

std::string pattern_of(const ModelConfig& m) { return layer_string(m.pattern); }

// Pairs (mixer, feed-forward): true when every even block is one of `mixers` and every odd one
// E or F.
bool paired(const std::vector<LayerKind>& p, LayerKind recurrent) {
  if (p.empty() || p.size() % 2 != 0) return false;
  for (size_t i = 0; i < p.size(); i += 2) {
    if (p[i] != recurrent && p[i] != LayerKind::attention) return false;
    if (p[i + 1] != LayerKind::moe && p[i + 1] != LayerKind::mlp) return false;
  }
  return true;
}

bool has(const std::vector<LayerKind>& p, LayerKind k) {
  for (LayerKind x : p)
    if (x == k) return true;
  return false;
}

void check_common(const Config& cfg, GgufArch arch) {
  const ModelConfig& m = cfg.model;
  const char* name = gguf_arch_name(arch);
  if (cfg.lora.enabled())
    refuse("the checkpoint is a LoRA adapter run; fold it into its base first (magellano merge-adapter) and export that.");
  const bool mamba1 = has(m.pattern, LayerKind::mamba), mamba2 = has(m.pattern, LayerKind::mamba2);
  if (mamba1 && m.expand != 2)
    refuse("llama.cpp's " + std::string(name) + " supports only Mamba blocks with expand 2 (model.expand is " +
           std::to_string(m.expand) + ").");
  if (mamba2 && m.mamba2.expand != 2)
    refuse("llama.cpp's " + std::string(name) + " supports only Mamba2 blocks with expand 2 (model.mamba2.expand is " +
           std::to_string(m.mamba2.expand) + ").");
  if (mamba1 && m.mamba_proj_bias) refuse("llama.cpp's Mamba blocks have no in_proj / out_proj biases (model.mamba_proj_bias).");
  if (mamba2 && m.mamba2.bias) refuse("llama.cpp's Mamba2 blocks have no in_proj / out_proj biases (model.mamba2.bias).");
  if (mamba2 && (m.mamba2.dt_lo != 0.0 || !std::isinf(m.mamba2.dt_hi)))
    refuse("llama.cpp's Mamba2 never clamps the step size; model.mamba2.time_step_limit must be [0, inf].");
  if (has(m.pattern, LayerKind::moe) && m.moe.activation != ops::ExpertActivation::swiglu)
    refuse("llama.cpp's " + std::string(name) + " experts are SwiGLU (model.moe.activation is gelu).");
  if (has(m.pattern, LayerKind::mlp) && m.mlp.activation != ops::ExpertActivation::swiglu)
    refuse("llama.cpp's " + std::string(name) + " MLPs are SwiGLU (model.mlp.activation is gelu).");
  if (arch != GgufArch::granitehybrid &&
      (m.embedding_multiplier != 1.0 || m.residual_multiplier != 1.0 || m.logits_scaling != 1.0))
    refuse("llama.cpp's " + std::string(name) + " has no embedding / residual multipliers or logits scaling "
           "(only granitehybrid does).");
}

// Every parameter of the model by name, read to the host on demand; NF4 weights dequantized.
class HostWeights {
 public:
  explicit HostWeights(nn::Model& model) {
    for (const auto& p : model.parameters()) tensors_[p.name] = p.tensor;
    for (const auto& l : model.linears())
      if (l.linear->storage() == nn::WeightStorage::nf4) nf4_[l.path + ".weight"] = l.linear;
  }
  bool contains(const std::string& name) const { return tensors_.count(name) || nf4_.count(name); }
  // (numel) f32 values, row-major in our shape.
  std::vector<float> get(const std::string& name) const {
    if (auto it = tensors_.find(name); it != tensors_.end()) return it->second.to_host();
    if (auto it = nf4_.find(name); it != nf4_.end()) return it->second->dense_weight().to_host();
    throw Error("GGUF export: the model has no parameter '" + name + "' (internal).");
  }
  void use(const std::string& name) {
    if (!contains(name)) throw Error("GGUF export: the model has no parameter '" + name + "' (internal).");
    if (!used_.insert(name).second) throw Error("GGUF export: parameter '" + name + "' is mapped twice (internal).");
  }
  // Throws unless every parameter went into the file (nothing silently dropped).
  void check_all_used() const {
    for (const auto& [n, t] : tensors_)
      if (!used_.count(n)) refuse("parameter '" + n + "' has no place in llama.cpp's layout.");
    for (const auto& [n, l] : nf4_)
      if (!used_.count(n)) refuse("parameter '" + n + "' has no place in llama.cpp's layout.");
  }

 private:
  std::unordered_map<std::string, Tensor> tensors_;
  std::unordered_map<std::string, nn::Linear*> nf4_;
  std::set<std::string> used_;
};

struct Planned {
  std::string name;
  std::vector<int64_t> ne;  // ggml order
  GgmlType type;
  std::function<std::vector<float>()> values;  // row-major over reversed(ne)
};

// The converter's type rules (convert_hf_to_gguf.py prepare_tensors).
GgmlType type_for(const std::string& name, const std::vector<int64_t>& ne, GgmlType wanted) {
  const bool f32 = ne.size() <= 1 || ends_with(name, "_norm.weight") || !ends_with(name, ".weight") ||
                   name.find(".ssm_conv1d.") != std::string::npos || name.find(".ffn_gate_inp.") != std::string::npos;
  if (f32) return GgmlType::f32;
  if (wanted == GgmlType::q8_0 && ne[0] % 32 != 0) return GgmlType::f16;  // gguf-py's QuantError fallback
  return wanted;
}

class Planner {
 public:
  Planner(HostWeights& w, GgmlType wanted) : w_(w), wanted_(wanted) {}
  // A tensor whose values are parameter `from` as it is (its row-major order is the ggml order).
  void same(const std::string& name, const std::vector<int64_t>& ne, const std::string& from) {
    w_.use(from);
    HostWeights* w = &w_;
    add(name, ne, [w, from] { return w->get(from); });
  }
  // A parameter with a transformation of its values.
  void mapped(const std::string& name, const std::vector<int64_t>& ne, const std::string& from,
              std::function<std::vector<float>(std::vector<float>)> f) {
    w_.use(from);
    HostWeights* w = &w_;
    add(name, ne, [w, from, f] { return f(w->get(from)); });
  }
  // Parameters stacked along a new slowest dimension (experts).
  void stacked(const std::string& name, const std::vector<int64_t>& ne, const std::vector<std::string>& from) {
    for (const auto& f : from) w_.use(f);
    HostWeights* w = &w_;
    add(name, ne, [w, from] {
      std::vector<float> all;
      for (const auto& f : from) {
        auto v = w->get(f);
        all.insert(all.end(), v.begin(), v.end());
      }
      return all;
    });
  }
  void zeros(const std::string& name, int64_t n) {
    add(name, {n}, [n] { return std::vector<float>(static_cast<size_t>(n), 0.0f); });
  }
  std::vector<Planned> take() { return std::move(plan_); }

 private:
  void add(const std::string& name, const std::vector<int64_t>& ne, std::function<std::vector<float>()> f) {
    plan_.push_back({name, ne, type_for(name, ne, wanted_), std::move(f)});
  }
  HostWeights& w_;
  GgmlType wanted_;
  std::vector<Planned> plan_;
};

std::vector<float> neg_exp(std::vector<float> v) {
  for (float& x : v) x = -std::exp(x);  // fp32, as -torch.exp(A_log)
  return v;
}

// The converter's LlamaModel.permute(w, n_head): rows of each head (hd of them) reordered so that
// row h·hd + 2i + j takes row h·hd + j·hd/2 + i (j in {0, 1}).
std::function<std::vector<float>(std::vector<float>)> permute_heads(int64_t heads, int64_t hd, int64_t cols) {
  return [=](std::vector<float> w) {
    std::vector<float> out(w.size());
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          const int64_t dst = h * hd + 2 * i + j, src = h * hd + j * (hd / 2) + i;
          std::copy_n(w.begin() + src * cols, cols, out.begin() + dst * cols);
        }
    return out;
  };
}

std::string blk(int64_t n, const std::string& what) { return "blk." + std::to_string(n) + "." + what; }
std::string layer(int64_t b) { return "backbone.layers." + std::to_string(b) + "."; }

void plan_mamba(Planner& p, const HostWeights& w, const ModelConfig& m, int64_t n, int64_t b, bool inner_norms) {
  const int64_t D = m.dim, E = 2 * D, N = m.d_state, K = m.d_conv, R = m.dt_rank;
  const std::string x = layer(b) + "mixer.";
  p.same(blk(n, "ssm_in.weight"), {D, 2 * E}, x + "in_proj.weight");
  p.same(blk(n, "ssm_conv1d.weight"), {K, E}, x + "conv1d.weight");  // (E, 1, K) squeezed: same order
  if (w.contains(x + "conv1d.bias")) p.same(blk(n, "ssm_conv1d.bias"), {E}, x + "conv1d.bias");
  else p.zeros(blk(n, "ssm_conv1d.bias"), E);
  p.same(blk(n, "ssm_x.weight"), {E, R + 2 * N}, x + "x_proj.weight");
  p.same(blk(n, "ssm_dt.weight"), {R, E}, x + "dt_proj.weight");
  if (w.contains(x + "dt_proj.bias")) p.same(blk(n, "ssm_dt.bias"), {E}, x + "dt_proj.bias");
  else p.zeros(blk(n, "ssm_dt.bias"), E);
  p.mapped(blk(n, "ssm_a"), {N, E}, x + "A_log", neg_exp);
  p.same(blk(n, "ssm_d"), {E}, x + "D");
  p.same(blk(n, "ssm_out.weight"), {E, D}, x + "out_proj.weight");
  if (inner_norms) {
    p.same(blk(n, "ssm_dt_norm.weight"), {R}, x + "dt_layernorm.weight");
    p.same(blk(n, "ssm_b_norm.weight"), {N}, x + "b_layernorm.weight");
    p.same(blk(n, "ssm_c_norm.weight"), {N}, x + "c_layernorm.weight");
  }
}

void plan_mamba2(Planner& p, const HostWeights& w, const ModelConfig& m, int64_t n, int64_t b) {
  const Mamba2Section& s = m.mamba2;
  const int64_t D = m.dim, Di = s.inner(D), G = s.n_groups, N = s.d_state, K = s.d_conv, H = Di / s.head_dim;
  const int64_t C = Di + 2 * G * N;
  const std::string x = layer(b) + "mixer.";
  p.same(blk(n, "ssm_in.weight"), {D, 2 * Di + 2 * G * N + H}, x + "in_proj.weight");
  p.same(blk(n, "ssm_conv1d.weight"), {K, C}, x + "conv1d.weight");
  if (w.contains(x + "conv1d.bias")) p.same(blk(n, "ssm_conv1d.bias"), {C}, x + "conv1d.bias");
  else p.zeros(blk(n, "ssm_conv1d.bias"), C);
  p.same(blk(n, "ssm_dt.bias"), {H}, x + "dt_bias");
  p.mapped(blk(n, "ssm_a"), {1, H}, x + "A_log", neg_exp);
  p.same(blk(n, "ssm_d"), {1, H}, x + "D");
  p.same(blk(n, "ssm_norm.weight"), {Di / G, G}, x + "norm.weight");
  p.same(blk(n, "ssm_out.weight"), {Di, D}, x + "out_proj.weight");
}

void plan_attention(Planner& p, const ModelConfig& m, int64_t n, int64_t b, bool permute) {
  const int64_t D = m.dim, nH = m.attention.heads, nKV = m.attention.kv_heads > 0 ? m.attention.kv_heads : nH;
  const int64_t d = m.attention.head_dim > 0 ? m.attention.head_dim : D / nH;
  const std::string x = layer(b) + "mixer.";
  if (permute) {
    p.mapped(blk(n, "attn_q.weight"), {D, nH * d}, x + "q_proj.weight", permute_heads(nH, d, D));
    p.mapped(blk(n, "attn_k.weight"), {D, nKV * d}, x + "k_proj.weight", permute_heads(nKV, d, D));
  } else {
    p.same(blk(n, "attn_q.weight"), {D, nH * d}, x + "q_proj.weight");
    p.same(blk(n, "attn_k.weight"), {D, nKV * d}, x + "k_proj.weight");
  }
  p.same(blk(n, "attn_v.weight"), {D, nKV * d}, x + "v_proj.weight");
  p.same(blk(n, "attn_output.weight"), {nH * d, D}, x + "o_proj.weight");
}

void plan_ffn(Planner& p, const HostWeights& w, const ModelConfig& m, int64_t n, int64_t b, LayerKind kind) {
  const int64_t D = m.dim;
  const std::string x = layer(b);
  p.same(blk(n, "ffn_norm.weight"), {D}, x + "norm.weight");
  if (kind == LayerKind::mlp) {
    const int64_t F = m.mlp_config().hidden;
    p.same(blk(n, "ffn_gate.weight"), {D, F}, x + "mlp.w1.weight");
    p.same(blk(n, "ffn_up.weight"), {D, F}, x + "mlp.w3.weight");
    p.same(blk(n, "ffn_down.weight"), {F, D}, x + "mlp.w2.weight");
    return;
  }
  const int64_t X = m.moe.experts, F = m.moe_config().hidden;
  p.same(blk(n, "ffn_gate_inp.weight"), {D, X}, x + "moe.gate.weight");
  std::vector<std::string> w1, w2, w3;
  for (int64_t e = 0; e < X; ++e) {
    const std::string pe = x + "moe.experts." + std::to_string(e) + ".";
    w1.push_back(pe + "w1.weight");
    w2.push_back(pe + "w2.weight");
    w3.push_back(pe + "w3.weight");
  }
  p.stacked(blk(n, "ffn_gate_exps.weight"), {D, F, X}, w1);
  p.stacked(blk(n, "ffn_up_exps.weight"), {D, F, X}, w3);
  p.stacked(blk(n, "ffn_down_exps.weight"), {F, D, X}, w2);
  if (w.contains(x + "moe.shared_expert.w1.weight")) {
    const int64_t Fs = m.moe.shared_expert_hidden;
    p.same(blk(n, "ffn_gate_shexp.weight"), {D, Fs}, x + "moe.shared_expert.w1.weight");
    p.same(blk(n, "ffn_up_shexp.weight"), {D, Fs}, x + "moe.shared_expert.w3.weight");
    p.same(blk(n, "ffn_down_shexp.weight"), {Fs, D}, x + "moe.shared_expert.w2.weight");
  }
}

uint32_t u32(int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<uint32_t>::max())
    refuse(std::string(what) + " " + std::to_string(v) + " does not fit GGUF's u32.");
  return static_cast<uint32_t>(v);
}

}  // namespace

const char* gguf_arch_name(GgufArch a) {
  switch (a) {
    case GgufArch::mamba: return "mamba";
    case GgufArch::mamba2: return "mamba2";
    case GgufArch::granitehybrid: return "granitehybrid";
    case GgufArch::jamba: return "jamba";
  }
  return "?";
}

GgufArch gguf_arch_for(const Config& cfg) {
  const ModelConfig& m = cfg.model;
  const auto& p = m.pattern;
  const std::string pat = pattern_of(m);
  auto all = [&](LayerKind k) {
    for (LayerKind x : p)
      if (x != k) return false;
    return !p.empty();
  };
  GgufArch arch;
  if (all(LayerKind::mamba)) arch = GgufArch::mamba;
  else if (all(LayerKind::mamba2)) arch = GgufArch::mamba2;
  else if (paired(p, LayerKind::mamba2)) arch = GgufArch::granitehybrid;
  else if (paired(p, LayerKind::mamba) && has(p, LayerKind::mamba)) arch = GgufArch::jamba;
  else {
    std::string kind = has(p, LayerKind::mamba) && has(p, LayerKind::moe) ? " (Mamba1 + MoE)" : "";
    refuse("llama.cpp has no architecture for the layer pattern " + pat.substr(0, 60) + kind +
           "; it runs pure Mamba (M...), pure Mamba2 (S...), Granite 4.0-H pairs ((S|A)(E|F)...) and Jamba "
           "pairs ((M|A)(E|F)...).");
  }
  check_common(cfg, arch);
  if (m.bidirectional_prefix)
    refuse("llama.cpp's Mamba layers have no reverse scan over a prefix (model.bidirectional_prefix).");
  if (m.infill_positions == data::InfillPositions::glm2d)
    refuse("llama.cpp's rotary attention has no GLM 2D positions (model.infill_positions \"glm2d\").");
  const bool attn = has(p, LayerKind::attention), moe = has(p, LayerKind::moe), mlp = has(p, LayerKind::mlp);
  if (arch == GgufArch::mamba && m.mamba_inner_norms)
    refuse("llama.cpp's mamba has no weighted dt/B/C norms (model.mamba_inner_norms); only its jamba does.");
  if (arch == GgufArch::granitehybrid) {
    if (moe && mlp)
      refuse("llama.cpp's granitehybrid has either experts in every layer or none; the pattern mixes E and F.");
    if (moe && m.moe.router == nn::MoERouter::softmax_topk && !m.moe.normalize_top_k)
      refuse("llama.cpp's granitehybrid renormalises the top-k router weights (model.moe.normalize_top_k is false).");
  }
  if (arch == GgufArch::jamba) {
    // A Mamba1 hybrid that is not Jamba's model has no llama.cpp architecture at all.
    auto jamba_refuse = [&](const std::string& why) {
      refuse("llama.cpp has no architecture for the layer pattern " + pat.substr(0, 60) +
             " (Mamba1 + attention / MoE / MLP) as configured: " + why);
    };
    if (!m.mamba_inner_norms)
      jamba_refuse("llama.cpp's jamba Mamba layers have dt/B/C RMSNorms (set model.mamba_inner_norms).");
    if (moe && !(m.moe.router == nn::MoERouter::softmax_topk && !m.moe.normalize_top_k))
      jamba_refuse("llama.cpp's jamba routes softmax-then-top-k without renormalising (model.moe.router softmax_topk, "
             "normalize_top_k false).");
    if (moe && m.moe.shared_expert_hidden > 0) jamba_refuse("llama.cpp's jamba has no shared expert.");
    if (moe && mlp && m.moe_config().hidden != m.mlp_config().hidden)
      jamba_refuse("llama.cpp's jamba has one feed-forward width for experts and MLPs (model.moe.hidden and model.mlp.hidden differ).");
    if (attn) {
      const AttentionSection& a = m.attention;
      const int64_t d = a.head_dim > 0 ? a.head_dim : m.dim / a.heads;
      if (a.rope_theta != 0.0) jamba_refuse("llama.cpp's jamba attention has no rotary positions (model.attention.rope_theta must be 0).");
      if (d * a.heads != m.dim) jamba_refuse("llama.cpp's jamba attention needs heads × head_dim = dim.");
      if (a.scale != 0.0 && std::fabs(a.scale * std::sqrt(double(d)) - 1.0) > 1e-6)
        jamba_refuse("llama.cpp's jamba attention scales scores by 1/sqrt(head_dim) (model.attention.scale differs).");
    }
  }
  return arch;
}

GgufExportReport export_gguf(nn::Model& model, const Config& cfg, const data::Tokenizer& tok, const fs::path& out,
                             const GgufExportOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const GgufArch arch = gguf_arch_for(cfg);
  const ModelConfig& m = cfg.model;
  const std::string a = gguf_arch_name(arch);
  const auto& pat = m.pattern;
  const bool pairs = arch == GgufArch::granitehybrid || arch == GgufArch::jamba;
  const int64_t layers = pairs ? static_cast<int64_t>(pat.size() / 2) : static_cast<int64_t>(pat.size());
  const int64_t D = m.dim, V = m.vocab_size;

  HostWeights w(model);
  Planner p(w, options.type);
  p.same("token_embd.weight", {D, V}, "backbone.embeddings.weight");
  for (int64_t n = 0; n < layers; ++n) {
    const int64_t b = pairs ? 2 * n : n;
    p.same(blk(n, "attn_norm.weight"), {D}, layer(b) + "norm.weight");
    switch (pat[b]) {
      case LayerKind::mamba: plan_mamba(p, w, m, n, b, arch == GgufArch::jamba); break;
      case LayerKind::mamba2: plan_mamba2(p, w, m, n, b); break;
      case LayerKind::attention: plan_attention(p, m, n, b, arch == GgufArch::granitehybrid); break;
      default: refuse("internal: unexpected mixer block");
    }
    if (pairs) plan_ffn(p, w, m, n, b + 1, pat[b + 1]);
  }
  p.same("output_norm.weight", {D}, "backbone.norm_f.weight");
  if (!m.tie_embeddings) p.same("output.weight", {D, V}, "lm_head.weight");
  w.check_all_used();
  std::vector<Planned> plan = p.take();

  io::GgufWriter g(options.alignment);
  const uint32_t file_type = options.type == GgmlType::f32 ? 0 : options.type == GgmlType::f16 ? 1 : 7;
  g.add_string("general.architecture", a);
  g.add_string("general.type", "model");
  if (!options.name.empty()) g.add_string("general.name", options.name);
  g.add_u32("general.file_type", file_type);  // LlamaFileType: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7
  g.add_u32("general.quantization_version", 2);

  const bool rope = has(pat, LayerKind::attention) && m.attention.rope_theta > 0.0;
  int64_t ctx = options.context_length;
  if (ctx == 0) ctx = (arch == GgufArch::mamba || arch == GgufArch::mamba2 || (arch == GgufArch::granitehybrid && !rope))
                          ? (int64_t{1} << 20)
                          : cfg.train.seq_len;
  g.add_u32(a + ".context_length", u32(ctx, "context length"));
  g.add_u32(a + ".embedding_length", u32(D, "dim"));
  g.add_u32(a + ".block_count", u32(layers, "layers"));
  g.add_f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(m.norm_eps));
  if (arch == GgufArch::mamba || arch == GgufArch::jamba) {
    g.add_u32(a + ".ssm.conv_kernel", u32(m.d_conv, "d_conv"));
    g.add_u32(a + ".ssm.inner_size", u32(2 * D, "inner"));
    g.add_u32(a + ".ssm.state_size", u32(m.d_state, "d_state"));
    g.add_u32(a + ".ssm.time_step_rank", u32(m.dt_rank, "dt_rank"));
  } else {
    const Mamba2Section& s = m.mamba2;
    g.add_u32(a + ".ssm.conv_kernel", u32(s.d_conv, "d_conv"));
    g.add_u32(a + ".ssm.inner_size", u32(s.inner(D), "inner"));
    g.add_u32(a + ".ssm.state_size", u32(s.d_state, "d_state"));
    g.add_u32(a + ".ssm.time_step_rank", u32(s.inner(D) / s.head_dim, "Mamba2 heads"));  // the head count
    g.add_u32(a + ".ssm.group_count", u32(s.n_groups, "n_groups"));
  }
  if (arch == GgufArch::mamba) {
    g.add_u32(a + ".feed_forward_length", 0);  // unused; the converter writes 0
    g.add_u32(a + ".attention.head_count", 0);
    g.add_bool(a + ".ssm.dt_b_c_rms", false);
  } else if (arch == GgufArch::mamba2) {
    g.add_u32(a + ".feed_forward_length", 0);
    g.add_u32(a + ".attention.head_count", 0);
  } else {
    const AttentionSection& at = m.attention;
    const int64_t kv = at.kv_heads > 0 ? at.kv_heads : at.heads;
    const int64_t d = at.head_dim > 0 ? at.head_dim : D / at.heads;
    std::vector<int32_t> kv_per_layer;
    for (int64_t n = 0; n < layers; ++n)
      kv_per_layer.push_back(pat[2 * n] == LayerKind::attention ? static_cast<int32_t>(kv) : 0);
    const bool moe = has(pat, LayerKind::moe);
    g.add_u32(a + ".feed_forward_length",
              u32(moe ? m.moe_config().hidden : m.mlp_config().hidden, "feed-forward width"));
    g.add_u32(a + ".attention.head_count", u32(at.heads, "heads"));
    g.add_array(a + ".attention.head_count_kv", kv_per_layer);
    if (d * at.heads != D) {
      g.add_u32(a + ".attention.key_length", u32(d, "head_dim"));
      g.add_u32(a + ".attention.value_length", u32(d, "head_dim"));
    }
    if (moe) {
      g.add_u32(a + ".expert_count", u32(m.moe.experts, "experts"));
      g.add_u32(a + ".expert_used_count", u32(m.moe.top_k, "top_k"));
    }
    if (arch == GgufArch::granitehybrid) {
      g.add_u32(a + ".vocab_size", u32(V, "vocab_size"));
      g.add_u32(a + ".rope.dimension_count", u32(d, "head_dim"));
      if (rope) g.add_f32(a + ".rope.freq_base", static_cast<float>(m.attention.rope_theta));
      g.add_bool(a + ".rope.scaling.finetuned", rope);  // granitehybrid's switch for rotary positions
      if (at.scale != 0.0) g.add_f32(a + ".attention.scale", static_cast<float>(at.scale));
      g.add_f32(a + ".embedding_scale", static_cast<float>(m.embedding_multiplier));
      g.add_f32(a + ".residual_scale", static_cast<float>(m.residual_multiplier));
      g.add_f32(a + ".logit_scale", static_cast<float>(m.logits_scaling));
      if (moe && m.moe.shared_expert_hidden > 0)
        g.add_u32(a + ".expert_shared_feed_forward_length", u32(m.moe.shared_expert_hidden, "shared expert width"));
    }
  }
  data::add_gguf_vocab(g, tok, V);

  GgufExportReport report;
  report.arch = arch;
  for (const auto& t : plan) {
    g.add_tensor(t.name, t.ne, t.type);
    ++report.by_type[t.type];
  }
  report.tensors = static_cast<int64_t>(plan.size());
  g.write(out, [&](size_t i, std::vector<uint8_t>& bytes) {
    const Planned& t = plan[i];
    const std::vector<float> v = t.values();
    int64_t numel = 1;
    for (int64_t d : t.ne) numel *= d;
    if (static_cast<int64_t>(v.size()) != numel)
      refuse("tensor " + t.name + " has " + std::to_string(v.size()) + " values where llama.cpp expects " +
             std::to_string(numel) + " (internal).");
    for (float x : v)
      if (!std::isfinite(x))
        refuse("tensor " + t.name + " holds a NaN or infinite value; the checkpoint is damaged (nothing was written).");
    io::ggml_encode(t.type, v.data(), numel, bytes);
  });
  report.bytes = fs::file_size(out);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace magellano::train
