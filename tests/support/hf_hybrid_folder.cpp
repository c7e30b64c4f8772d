#include "hf_hybrid_folder.hpp"

#include <cstring>
#include <functional>
#include <map>

#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"

namespace mgtest {
namespace io = magellano::io;
namespace fs = std::filesystem;

namespace {

io::StTensor f32(const ref::Vec& v, std::vector<int64_t> shape) {
  io::StTensor t{io::StDType::F32, std::move(shape), std::vector<uint8_t>(v.size() * 4)};
  for (size_t i = 0; i < v.size(); ++i) {
    const float x = static_cast<float>(v[i]);
    std::memcpy(&t.bytes[4 * i], &x, 4);
  }
  return t;
}

// "backbone.layers.7.moe.experts.3.w1.weight" -> 7, "moe.experts.3.w1.weight"; -1 outside blocks.
std::pair<int64_t, std::string> block_of(const std::string& name) {
  const std::string prefix = "backbone.layers.";
  if (name.rfind(prefix, 0) != 0) return {-1, name};
  const size_t dot = name.find('.', prefix.size());
  return {std::stoll(name.substr(prefix.size(), dot - prefix.size())), name.substr(dot + 1)};
}

bool starts(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Rows of `v` (rows, cols) at row offset `row` of `into`.
void put_rows(ref::Vec& into, const ref::Vec& v, int64_t row, int64_t cols) {
  std::copy(v.begin(), v.end(), into.begin() + row * cols);
}

// The writer both families share: `rename` maps a whole tensor (our name -> theirs, "" = packed
// by `pack`), `pack` places a packed part; the packed tensors are written after the others.
struct Packed {
  ref::Vec values;
  std::vector<int64_t> shape;
};
using Tensors = std::vector<std::pair<std::string, io::StTensor>>;

// Expert e's part (w1, w3: (F, D); w2: (D, F)) into the packed pair: `in` (X, 2F, D) holds
// [w1_e; w3_e] per expert, `out` (X, D, F) the w2s.
void pack_expert(std::map<std::string, Packed>& packed, const std::string& in, const std::string& out,
                 const std::string& part, int64_t e, const ref::Vec& v, int64_t X, int64_t D, int64_t F) {
  if (part == "w2") {
    Packed& t = packed[out];
    t.values.resize(X * D * F), t.shape = {X, D, F};
    put_rows(t.values, v, e * D, F);
  } else {
    Packed& t = packed[in];
    t.values.resize(X * 2 * F * D), t.shape = {X, 2 * F, D};
    put_rows(t.values, v, 2 * e * F + (part == "w3" ? F : 0), D);
  }
}

void write_folder(const magellano::nn::Model& model, const ref::Weights& w, const fs::path& dir,
                  const nlohmann::json& config,
                  const std::function<std::string(const std::string&)>& rename,
                  const std::function<void(const std::string&, const ref::Vec&, std::map<std::string, Packed>&)>& pack) {
  Tensors out;
  std::map<std::string, Packed> packed;
  for (const auto& p : model.parameters()) {
    const std::string to = rename(p.name);
    if (to.empty())
      pack(p.name, w.at(p.name), packed);
    else
      out.emplace_back(to, f32(w.at(p.name), p.tensor.shape().dims()));
  }
  for (auto& [name, t] : packed) out.emplace_back(name, f32(t.values, t.shape));
  io::write_safetensors(dir / "model.safetensors", out, {{"format", "pt"}});
  io::write_json_atomically(dir / "config.json", config);
}

}  // namespace

void write_hf_granite_folder(const magellano::nn::Model& model, const ref::Weights& w, const fs::path& dir,
                             const nlohmann::json& config) {
  const auto& s = model.spec();
  const int64_t D = s.dim, X = s.moe.experts, F = s.moe.hidden, Fs = s.moe.shared_hidden ? s.moe.shared_hidden : s.mlp.hidden;
  auto rename = [&](const std::string& name) -> std::string {
    if (name == "backbone.embeddings.weight") return "model.embed_tokens.weight";
    if (name == "backbone.norm_f.weight") return "model.norm.weight";
    if (name == "lm_head.weight") return "lm_head.weight";
    const auto [j, rest] = block_of(name);
    const std::string layer = "model.layers." + std::to_string(j / 2) + ".";
    if (j % 2 == 0) {
      if (rest == "norm.weight") return layer + "input_layernorm.weight";
      return layer + (s.layers[j] == 'A' ? "self_attn." : "mamba.") + rest.substr(std::string("mixer.").size());
    }
    if (rest == "norm.weight") return layer + "post_attention_layernorm.weight";
    if (rest == "moe.gate.weight") return layer + "block_sparse_moe.router.layer.weight";
    if (rest == "moe.shared_expert.w2.weight" || rest == "mlp.w2.weight") return layer + "shared_mlp.output_linear.weight";
    return "";  // packed
  };
  auto pack = [&](const std::string& name, const ref::Vec& v, std::map<std::string, Packed>& packed) {
    const auto [j, rest] = block_of(name);
    const std::string layer = "model.layers." + std::to_string(j / 2) + ".";
    if (starts(rest, "moe.experts.")) {
      const int64_t e = std::stoll(rest.substr(12, rest.find('.', 12) - 12));
      pack_expert(packed, layer + "block_sparse_moe.input_linear.weight", layer + "block_sparse_moe.output_linear.weight",
                  rest.substr(rest.find('.', 12) + 1, 2), e, v, X, D, F);
      return;
    }
    Packed& t = packed[layer + "shared_mlp.input_linear.weight"];  // shared expert / mlp w1, w3
    t.values.resize(2 * Fs * D), t.shape = {2 * Fs, D};
    put_rows(t.values, v, rest.find("w3.weight") != std::string::npos ? Fs : 0, D);
  };
  write_folder(model, w, dir, config, rename, pack);
}

void write_hf_jamba_folder(const magellano::nn::Model& model, const ref::Weights& w, const fs::path& dir,
                           const nlohmann::json& config, bool fused_experts) {
  const auto& s = model.spec();
  const int64_t D = s.dim, X = s.moe.experts, F = s.moe.hidden;
  auto rename = [&](const std::string& name) -> std::string {
    if (name == "backbone.embeddings.weight") return "model.embed_tokens.weight";
    if (name == "backbone.norm_f.weight") return "model.final_layernorm.weight";
    if (name == "lm_head.weight") return "lm_head.weight";
    const auto [j, rest] = block_of(name);
    const std::string layer = "model.layers." + std::to_string(j / 2) + ".";
    if (j % 2 == 0) {
      if (rest == "norm.weight") return layer + "input_layernorm.weight";
      return layer + (s.layers[j] == 'A' ? "self_attn." : "mamba.") + rest.substr(std::string("mixer.").size());
    }
    const std::string ff = layer + "feed_forward.";
    if (rest == "norm.weight") return layer + "pre_ff_layernorm.weight";
    if (rest == "moe.gate.weight") return ff + "router.weight";
    static const std::map<std::string, std::string> proj = {{"w1", "gate_proj"}, {"w3", "up_proj"}, {"w2", "down_proj"}};
    if (starts(rest, "mlp.")) return ff + proj.at(rest.substr(4, 2)) + ".weight";
    if (fused_experts) return "";
    const size_t dot = rest.find('.', 12);
    return ff + "experts." + rest.substr(12, dot - 12) + "." + proj.at(rest.substr(dot + 1, 2)) + ".weight";
  };
  auto pack = [&](const std::string& name, const ref::Vec& v, std::map<std::string, Packed>& packed) {
    const auto [j, rest] = block_of(name);
    const std::string ff = "model.layers." + std::to_string(j / 2) + ".feed_forward.experts.";
    const size_t dot = rest.find('.', 12);
    pack_expert(packed, ff + "gate_up_proj", ff + "down_proj", rest.substr(dot + 1, 2), std::stoll(rest.substr(12, dot - 12)),
                v, X, D, F);
  };
  write_folder(model, w, dir, config, rename, pack);
}

}  // namespace mgtest
