// GGUF export (train/gguf_export.hpp) of small models of each architecture, read back with the
// independent test reader (support/gguf_reader.hpp):
//   - metadata: general.*, {arch}.* with llama.cpp's key names and types, per-layer head_count_kv;
//   - every tensor's name, ggml dims and type (the converter's F32 rules, q8_0 → F16 fallback),
//     and its values equal to our parameters after the converter's transformations (-exp(A_log),
//     squeezed conv1d, Mamba2 norm in groups, stacked experts) bit for bit in F32, as float64's
//     round-to-nearest-even in F16, as the float64 Q8_0 rule in Q8_0 (support/gguf_reader.cpp);
//   - Granite's q / k row permutation checked by what it is for: llama.cpp's adjacent-pair rotary
//     embedding on the permuted weights gives the same attention scores q·k as the NeoX pairing on
//     ours (float64, relative 1e-9);
//   - the tokenizer: tokens in GPT-2's alphabet (literal text for added tokens), types, merges,
//     padding ids, BOS / EOS;
//   - refusals (Mamba1 + MoE, and each setting llama.cpp cannot compute) with one line;
//   - the CLI: a checkpoint folder exported, an existing --out and a refused model leave no file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cli.hpp"
#include "gguf_reader.hpp"
#include "harness.hpp"
#include "hf_hybrid_folder.hpp"
#include "hybrid_reference.hpp"
#include "spm_tokenizer_files.hpp"
#include "magellano/data/bpe_model.hpp"
#include "magellano/data/byte_alphabet.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/gguf_export.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"

using namespace magellano;
using namespace mgtest;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kVocab = 300;  // the tokenizer has 260 ids; 40 padding ids

// GPT-2-style byte-level BPE: the 256 bytes, three merges, <|endoftext|>.
data::BpeModel small_bpe() {
  data::BpeModel m;
  for (uint8_t b : data::byte_order()) m.tokens.push_back(std::string(1, char(b)));
  auto id = [&](const std::string& s) {
    for (size_t i = 0; i < m.tokens.size(); ++i)
      if (m.tokens[i] == s) return uint32_t(i);
    return uint32_t(0);
  };
  for (auto [l, r] : std::vector<std::pair<std::string, std::string>>{{"t", "h"}, {"th", "e"}, {" ", "t"}}) {
    const uint32_t a = id(l), b = id(r);
    m.tokens.push_back(l + r);
    m.merges.push_back({a, b});
  }
  m.tokens.push_back("<|endoftext|>");
  m.special_ids = {uint32_t(m.tokens.size() - 1)};
  return m;
}

train::Config config(json model) {
  json j = train::Config::defaults().to_json();
  j["model"]["dt_rank"] = 0;  // resolved from dim (the defaults' is the default dim's)
  for (auto it = model.begin(); it != model.end(); ++it) j["model"][it.key()] = it.value();
  j["train"]["seq_len"] = 64;
  return train::Config::from_json(j);
}

std::map<std::string, std::vector<float>> host_params(const nn::Model& m) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& p : m.parameters()) out[p.name] = p.tensor.to_host();
  return out;
}

const GgufTensorEntry& tensor(const GgufFile& f, const std::string& name) {
  const GgufTensorEntry* t = f.tensor(name);
  if (!t) throw std::runtime_error("no tensor " + name);
  return *t;
}

// The F32 tensor's values equal `want` exactly.
void expect_f32(const GgufFile& f, const std::string& name, const std::vector<int64_t>& ne,
                const std::vector<float>& want) {
  const auto& t = tensor(f, name);
  EXPECT_EQ(t.ne, ne) << name;
  ASSERT_EQ(t.type, 0u) << name;
  const auto v = gguf_values(t);
  ASSERT_EQ(v.size(), want.size()) << name;
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], double(want[i])) << name << " at " << i;
}

std::vector<float> neg_exp(std::vector<float> v) {
  for (auto& x : v) x = float(-std::exp(double(x)));
  return v;
}

struct Exported {
  GgufFile file;
  std::map<std::string, std::vector<float>> params;
};

Exported export_model(const train::Config& cfg, const fs::path& path, io::GgmlType type, uint64_t seed = 5) {
  nn::Model model(test_ctx(), train::model_spec(cfg), seed);
  const data::Tokenizer tok(small_bpe());
  train::GgufExportOptions o;
  o.type = type;
  o.name = "test";
  train::export_gguf(model, cfg, tok, path, o);
  return {read_gguf(path), host_params(model)};
}

// The total number of values in the file equals that of the model's parameters plus `extra`
// (zero biases llama.cpp requires): nothing dropped, nothing twice.
void expect_all_values(const Exported& e, int64_t extra) {
  int64_t file = 0, params = 0;
  for (const auto& t : e.file.tensors) {
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    file += n;
  }
  for (const auto& [n, v] : e.params) params += int64_t(v.size());
  EXPECT_EQ(file, params + extra);
}

}  // namespace

TEST(GgufExport, MambaF32TensorsMetadataAndTokenizer) {
  TempDir d;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "MMM"}, {"d_state", 8},
                           {"tie_embeddings", false}, {"norm_eps", 1e-6}});
  const auto e = export_model(cfg, d / "m.gguf", io::GgmlType::f32);
  const GgufFile& f = e.file;
  const auto& kv = f.kv;
  EXPECT_EQ(kv.at("general.architecture").str, "mamba");
  EXPECT_EQ(kv.at("general.file_type").uinteger, 0u);
  EXPECT_EQ(kv.at("general.quantization_version").uinteger, 2u);
  EXPECT_EQ(kv.at("mamba.block_count").uinteger, 3u);
  EXPECT_EQ(kv.at("mamba.embedding_length").uinteger, 32u);
  EXPECT_EQ(kv.at("mamba.context_length").uinteger, 1u << 20);
  EXPECT_EQ(kv.at("mamba.ssm.conv_kernel").uinteger, 4u);
  EXPECT_EQ(kv.at("mamba.ssm.inner_size").uinteger, 64u);
  EXPECT_EQ(kv.at("mamba.ssm.state_size").uinteger, 8u);
  EXPECT_EQ(kv.at("mamba.ssm.time_step_rank").uinteger, 2u);  // ceil(32 / 16)
  EXPECT_EQ(kv.at("mamba.ssm.time_step_rank").type, 4u);
  EXPECT_EQ(float(kv.at("mamba.attention.layer_norm_rms_epsilon").number), 1e-6f);
  EXPECT_EQ(kv.at("mamba.attention.layer_norm_rms_epsilon").type, 6u);
  EXPECT_FALSE(kv.at("mamba.ssm.dt_b_c_rms").boolean);

  const auto& p = e.params;
  expect_f32(f, "token_embd.weight", {32, kVocab}, p.at("backbone.embeddings.weight"));
  expect_f32(f, "output.weight", {32, kVocab}, p.at("lm_head.weight"));
  expect_f32(f, "output_norm.weight", {32}, p.at("backbone.norm_f.weight"));
  for (int i = 0; i < 3; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".", x = "backbone.layers." + std::to_string(i) + ".";
    expect_f32(f, b + "attn_norm.weight", {32}, p.at(x + "norm.weight"));
    expect_f32(f, b + "ssm_in.weight", {32, 128}, p.at(x + "mixer.in_proj.weight"));
    expect_f32(f, b + "ssm_conv1d.weight", {4, 64}, p.at(x + "mixer.conv1d.weight"));
    expect_f32(f, b + "ssm_conv1d.bias", {64}, p.at(x + "mixer.conv1d.bias"));
    expect_f32(f, b + "ssm_x.weight", {64, 2 + 16}, p.at(x + "mixer.x_proj.weight"));
    expect_f32(f, b + "ssm_dt.weight", {2, 64}, p.at(x + "mixer.dt_proj.weight"));
    expect_f32(f, b + "ssm_dt.bias", {64}, p.at(x + "mixer.dt_proj.bias"));
    expect_f32(f, b + "ssm_d", {64}, p.at(x + "mixer.D"));
    expect_f32(f, b + "ssm_out.weight", {64, 32}, p.at(x + "mixer.out_proj.weight"));
    // A = -exp(A_log): fp32 exp against float64's, within 1 ulp.
    const auto& a = tensor(f, b + "ssm_a");
    EXPECT_EQ(a.ne, (std::vector<int64_t>{8, 64}));
    const auto av = gguf_values(a);
    const auto want = neg_exp(p.at(x + "mixer.A_log"));
    for (size_t k = 0; k < av.size(); ++k) ASSERT_NEAR(av[k], want[k], 1.2e-7 * std::fabs(want[k])) << k;
  }
  expect_all_values(e, 0);

  // The tokenizer.
  const data::BpeModel bpe = small_bpe();
  EXPECT_EQ(kv.at("tokenizer.ggml.model").str, "gpt2");
  EXPECT_EQ(kv.at("tokenizer.ggml.pre").str, "gpt-2");
  const auto& tokens = kv.at("tokenizer.ggml.tokens").strings;
  const auto& types = kv.at("tokenizer.ggml.token_type").ints;
  ASSERT_EQ(tokens.size(), size_t(kVocab));
  ASSERT_EQ(types.size(), size_t(kVocab));
  EXPECT_EQ(kv.at("tokenizer.ggml.token_type").elem_type, 5u);
  for (size_t i = 0; i + 1 < bpe.tokens.size(); ++i) {
    EXPECT_EQ(data::alphabet_to_bytes(tokens[i]).value_or("?"), bpe.tokens[i]) << i;
    EXPECT_EQ(types[i], 1) << i;
  }
  EXPECT_EQ(tokens[0], "!");
  EXPECT_EQ(tokens[259], "<|endoftext|>");
  EXPECT_EQ(types[259], 3);  // control
  EXPECT_EQ(tokens[258], "Ġt");
  EXPECT_EQ(tokens[260], "[PAD260]");
  EXPECT_EQ(types[299], 5);  // unused
  EXPECT_EQ(kv.at("tokenizer.ggml.merges").strings, (std::vector<std::string>{"t h", "th e", "Ġ t"}));
  EXPECT_EQ(kv.at("tokenizer.ggml.bos_token_id").uinteger, 259u);
  EXPECT_EQ(kv.at("tokenizer.ggml.eos_token_id").uinteger, 259u);
  EXPECT_FALSE(kv.at("tokenizer.ggml.add_bos_token").boolean);
}

TEST(GgufExport, MambaQ8_0AndF16FollowTheConvertersTypeRules) {
  TempDir d;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "MM"}, {"d_state", 8}});
  const auto e = export_model(cfg, d / "q.gguf", io::GgmlType::q8_0);
  const GgufFile& f = e.file;
  EXPECT_EQ(f.kv.at("general.file_type").uinteger, 7u);
  EXPECT_EQ(f.tensor("output.weight"), nullptr);  // tied: llama.cpp reuses token_embd
  EXPECT_EQ(tensor(f, "token_embd.weight").type, 8u);
  EXPECT_EQ(tensor(f, "blk.0.ssm_in.weight").type, 8u);
  EXPECT_EQ(tensor(f, "blk.0.ssm_x.weight").type, 8u);
  EXPECT_EQ(tensor(f, "blk.0.ssm_out.weight").type, 8u);
  EXPECT_EQ(tensor(f, "blk.0.ssm_dt.weight").type, 1u);  // rows of dt_rank 2: not Q8_0 blocks → F16
  for (const char* n : {"blk.0.ssm_conv1d.weight", "blk.0.ssm_conv1d.bias", "blk.0.ssm_a", "blk.0.ssm_d",
                        "blk.0.ssm_dt.bias", "blk.0.attn_norm.weight", "output_norm.weight"})
    EXPECT_EQ(tensor(f, n).type, 0u) << n;
  // Q8_0 bytes against the float64 rule; F16 bits against float64 rounding.
  const auto& w = e.params.at("backbone.layers.1.mixer.in_proj.weight");
  const auto& q = tensor(f, "blk.1.ssm_in.weight");
  ASSERT_EQ(q.bytes.size(), w.size() / 32 * 34);
  for (size_t b = 0; b < w.size() / 32; ++b) {
    uint16_t scale;
    int8_t qs[32];
    bool tie[32];
    ref_q8_0_block(w.data() + 32 * b, scale, qs, tie);
    uint16_t got;
    std::memcpy(&got, q.bytes.data() + 34 * b, 2);
    ASSERT_EQ(got, scale) << b;
    for (int j = 0; j < 32; ++j)
      if (!tie[j]) ASSERT_EQ(int8_t(q.bytes[34 * b + 2 + j]), qs[j]) << b << " " << j;
  }
  const auto& dt = tensor(f, "blk.1.ssm_dt.weight");
  const auto& dtw = e.params.at("backbone.layers.1.mixer.dt_proj.weight");
  for (size_t i = 0; i < dtw.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, dt.bytes.data() + 2 * i, 2);
    ASSERT_EQ(h, ref_half_bits(dtw[i])) << i;
  }
  const auto f16 = export_model(cfg, d / "h.gguf", io::GgmlType::f16);
  EXPECT_EQ(f16.file.kv.at("general.file_type").uinteger, 1u);
  EXPECT_EQ(tensor(f16.file, "token_embd.weight").type, 1u);
  EXPECT_EQ(tensor(f16.file, "blk.0.ssm_conv1d.weight").type, 0u);
}

TEST(GgufExport, Mamba2ShapesAndTransformations) {
  TempDir d;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "SS"},
                           {"mamba2", {{"head_dim", 16}, {"n_groups", 2}, {"d_state", 8}, {"d_conv", 4}, {"expand", 2},
                                       {"conv_bias", false}}}});
  const auto e = export_model(cfg, d / "m2.gguf", io::GgmlType::f32);
  const GgufFile& f = e.file;
  const auto& kv = f.kv;
  EXPECT_EQ(kv.at("general.architecture").str, "mamba2");
  EXPECT_EQ(kv.at("mamba2.ssm.inner_size").uinteger, 64u);
  EXPECT_EQ(kv.at("mamba2.ssm.time_step_rank").uinteger, 4u);  // heads = 64 / 16
  EXPECT_EQ(kv.at("mamba2.ssm.group_count").uinteger, 2u);
  EXPECT_EQ(kv.at("mamba2.ssm.state_size").uinteger, 8u);
  const auto& p = e.params;
  const int64_t C = 64 + 2 * 2 * 8;
  for (int i = 0; i < 2; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".", x = "backbone.layers." + std::to_string(i) + ".mixer.";
    expect_f32(f, b + "ssm_in.weight", {32, 2 * 64 + 2 * 2 * 8 + 4}, p.at(x + "in_proj.weight"));
    expect_f32(f, b + "ssm_conv1d.weight", {4, C}, p.at(x + "conv1d.weight"));
    expect_f32(f, b + "ssm_conv1d.bias", {C}, std::vector<float>(size_t(C), 0.0f));  // none: zeros
    expect_f32(f, b + "ssm_dt.bias", {4}, p.at(x + "dt_bias"));
    expect_f32(f, b + "ssm_d", {1, 4}, p.at(x + "D"));
    expect_f32(f, b + "ssm_norm.weight", {32, 2}, p.at(x + "norm.weight"));
    expect_f32(f, b + "ssm_out.weight", {64, 32}, p.at(x + "out_proj.weight"));
    const auto av = gguf_values(tensor(f, b + "ssm_a"));
    EXPECT_EQ(tensor(f, b + "ssm_a").ne, (std::vector<int64_t>{1, 4}));
    const auto want = neg_exp(p.at(x + "A_log"));
    for (size_t k = 0; k < av.size(); ++k) ASSERT_NEAR(av[k], want[k], 1.2e-7 * std::fabs(want[k]));
  }
  expect_all_values(e, 2 * C);
}

namespace {

// NeoX rotary embedding (pairs (i, i + hd/2)) or llama.cpp's "normal" one (pairs (2i, 2i + 1)) of
// one head's vector at position pos, frequency theta^(-2i/hd), float64.
std::vector<double> rope(std::vector<double> v, int64_t pos, double theta, bool neox) {
  const int64_t hd = int64_t(v.size());
  for (int64_t i = 0; i < hd / 2; ++i) {
    const double a = pos * std::pow(theta, -2.0 * i / hd);
    const int64_t x = neox ? i : 2 * i, y = neox ? i + hd / 2 : 2 * i + 1;
    const double u = v[x], w = v[y];
    v[x] = u * std::cos(a) - w * std::sin(a);
    v[y] = u * std::sin(a) + w * std::cos(a);
  }
  return v;
}

// Rows [h·hd, (h + 1)·hd) of W (rows × D, as doubles) times x.
std::vector<double> head_proj(const std::vector<double>& w, int64_t D, int64_t h, int64_t hd, const std::vector<double>& x) {
  std::vector<double> y(size_t(hd), 0.0);
  for (int64_t r = 0; r < hd; ++r)
    for (int64_t c = 0; c < D; ++c) y[size_t(r)] += w[size_t((h * hd + r) * D + c)] * x[size_t(c)];
  return y;
}

}  // namespace

TEST(GgufExport, GraniteHybridMetadataExpertsAndRotaryPermutation) {
  TempDir d;
  const double theta = 10000.0;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "SEAE"},
                           {"mamba2", {{"head_dim", 16}, {"n_groups", 1}, {"d_state", 8}, {"expand", 2}}},
                           {"attention", {{"heads", 4}, {"kv_heads", 2}, {"rope_theta", theta}, {"scale", 0.125}}},
                           {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 24}, {"router", "topk_softmax"},
                                    {"shared_expert_hidden", 16}}},
                           {"embedding_multiplier", 12.0}, {"residual_multiplier", 0.22}, {"logits_scaling", 8.0}});
  const auto e = export_model(cfg, d / "g.gguf", io::GgmlType::f32);
  const GgufFile& f = e.file;
  const auto& kv = f.kv;
  const std::string a = "granitehybrid.";
  EXPECT_EQ(kv.at("general.architecture").str, "granitehybrid");
  EXPECT_EQ(kv.at(a + "block_count").uinteger, 2u);
  EXPECT_EQ(kv.at(a + "attention.head_count").uinteger, 4u);
  EXPECT_EQ(kv.at(a + "attention.head_count_kv").ints, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(kv.at(a + "attention.head_count_kv").elem_type, 5u);
  EXPECT_EQ(kv.at(a + "feed_forward_length").uinteger, 24u);
  EXPECT_EQ(kv.at(a + "expert_shared_feed_forward_length").uinteger, 16u);
  EXPECT_EQ(kv.at(a + "expert_count").uinteger, 4u);
  EXPECT_EQ(kv.at(a + "expert_used_count").uinteger, 2u);
  EXPECT_EQ(kv.at(a + "rope.dimension_count").uinteger, 8u);
  EXPECT_EQ(kv.at(a + "rope.freq_base").number, theta);
  EXPECT_TRUE(kv.at(a + "rope.scaling.finetuned").boolean);
  EXPECT_EQ(kv.at(a + "context_length").uinteger, 64u);  // with rope: train.seq_len
  EXPECT_EQ(float(kv.at(a + "attention.scale").number), 0.125f);
  EXPECT_EQ(float(kv.at(a + "embedding_scale").number), 12.0f);
  EXPECT_EQ(float(kv.at(a + "residual_scale").number), 0.22f);
  EXPECT_EQ(float(kv.at(a + "logit_scale").number), 8.0f);
  EXPECT_EQ(kv.at(a + "vocab_size").uinteger, uint64_t(kVocab));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight"), nullptr);
  EXPECT_EQ(f.tensor("blk.1.ssm_in.weight"), nullptr);

  const auto& p = e.params;
  // Experts stacked: ffn_gate_exps[e][f][c] = experts.e.w1[f][c].
  for (int layer = 0; layer < 2; ++layer) {
    const std::string b = "blk." + std::to_string(layer) + ".", x = "backbone.layers." + std::to_string(2 * layer + 1) + ".";
    std::vector<float> w1, w2, w3;
    for (int ex = 0; ex < 4; ++ex) {
      const std::string pe = x + "moe.experts." + std::to_string(ex) + ".";
      for (auto [dst, n] : {std::pair{&w1, "w1"}, {&w2, "w2"}, {&w3, "w3"}}) {
        const auto& v = p.at(pe + n + ".weight");
        dst->insert(dst->end(), v.begin(), v.end());
      }
    }
    expect_f32(f, b + "ffn_norm.weight", {32}, p.at(x + "norm.weight"));
    expect_f32(f, b + "ffn_gate_inp.weight", {32, 4}, p.at(x + "moe.gate.weight"));
    expect_f32(f, b + "ffn_gate_exps.weight", {32, 24, 4}, w1);
    expect_f32(f, b + "ffn_up_exps.weight", {32, 24, 4}, w3);
    expect_f32(f, b + "ffn_down_exps.weight", {24, 32, 4}, w2);
    expect_f32(f, b + "ffn_gate_shexp.weight", {32, 16}, p.at(x + "moe.shared_expert.w1.weight"));
    expect_f32(f, b + "ffn_up_shexp.weight", {32, 16}, p.at(x + "moe.shared_expert.w3.weight"));
    expect_f32(f, b + "ffn_down_shexp.weight", {16, 32}, p.at(x + "moe.shared_expert.w2.weight"));
  }
  expect_f32(f, "blk.1.attn_v.weight", {32, 16}, p.at("backbone.layers.2.mixer.v_proj.weight"));
  expect_f32(f, "blk.1.attn_output.weight", {32, 32}, p.at("backbone.layers.2.mixer.o_proj.weight"));
  EXPECT_EQ(tensor(f, "blk.1.attn_q.weight").ne, (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(tensor(f, "blk.1.attn_k.weight").ne, (std::vector<int64_t>{32, 16}));

  // The permutation: scores of query head h against its kv head, positions 5 and 2, equal.
  const auto as_d = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  const auto q0 = as_d(p.at("backbone.layers.2.mixer.q_proj.weight")), k0 = as_d(p.at("backbone.layers.2.mixer.k_proj.weight"));
  const auto q1 = gguf_values(tensor(f, "blk.1.attn_q.weight")), k1 = gguf_values(tensor(f, "blk.1.attn_k.weight"));
  std::vector<double> x(32), y(32);
  for (int i = 0; i < 32; ++i) x[i] = std::sin(0.7 * i + 0.3), y[i] = std::cos(1.3 * i);
  bool permuted = false;
  for (int64_t h = 0; h < 4; ++h) {
    const int64_t g = h / 2;
    const auto qa = rope(head_proj(q0, 32, h, 8, x), 5, theta, true), ka = rope(head_proj(k0, 32, g, 8, y), 2, theta, true);
    const auto qb = rope(head_proj(q1, 32, h, 8, x), 5, theta, false), kb = rope(head_proj(k1, 32, g, 8, y), 2, theta, false);
    double sa = 0, sb = 0;
    for (int i = 0; i < 8; ++i) sa += qa[i] * ka[i], sb += qb[i] * kb[i];
    EXPECT_NEAR(sb, sa, 1e-9 * (1 + std::fabs(sa))) << "head " << h;
    permuted |= head_proj(q1, 32, h, 8, x) != head_proj(q0, 32, h, 8, x);
  }
  EXPECT_TRUE(permuted);  // the check is not vacuous: the rows did move
  expect_all_values(e, 0);
}

TEST(GgufExport, JambaMambaNormsDenseAndExpertLayers) {
  TempDir d;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "MEAF"}, {"d_state", 8},
                           {"mamba_inner_norms", true}, {"mamba_conv_bias", false},
                           {"attention", {{"heads", 4}, {"kv_heads", 1}, {"rope_theta", 0.0}}},
                           {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 24}, {"router", "softmax_topk"},
                                    {"normalize_top_k", false}}}});
  const auto e = export_model(cfg, d / "j.gguf", io::GgmlType::f32);
  const GgufFile& f = e.file;
  const auto& kv = f.kv;
  EXPECT_EQ(kv.at("general.architecture").str, "jamba");
  EXPECT_EQ(kv.at("jamba.block_count").uinteger, 2u);
  EXPECT_EQ(kv.at("jamba.attention.head_count_kv").ints, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(kv.at("jamba.feed_forward_length").uinteger, 24u);
  EXPECT_EQ(kv.at("jamba.ssm.time_step_rank").uinteger, 2u);
  EXPECT_EQ(kv.count("jamba.rope.freq_base"), 0u);
  const auto& p = e.params;
  expect_f32(f, "blk.0.ssm_dt_norm.weight", {2}, p.at("backbone.layers.0.mixer.dt_layernorm.weight"));
  expect_f32(f, "blk.0.ssm_b_norm.weight", {8}, p.at("backbone.layers.0.mixer.b_layernorm.weight"));
  expect_f32(f, "blk.0.ssm_c_norm.weight", {8}, p.at("backbone.layers.0.mixer.c_layernorm.weight"));
  expect_f32(f, "blk.0.ssm_conv1d.bias", {64}, std::vector<float>(64, 0.0f));
  expect_f32(f, "blk.1.attn_q.weight", {32, 32}, p.at("backbone.layers.2.mixer.q_proj.weight"));  // no permutation
  expect_f32(f, "blk.1.attn_k.weight", {32, 8}, p.at("backbone.layers.2.mixer.k_proj.weight"));
  expect_f32(f, "blk.1.ffn_gate.weight", {32, 24}, p.at("backbone.layers.3.mlp.w1.weight"));
  expect_f32(f, "blk.1.ffn_up.weight", {32, 24}, p.at("backbone.layers.3.mlp.w3.weight"));
  expect_f32(f, "blk.1.ffn_down.weight", {24, 32}, p.at("backbone.layers.3.mlp.w2.weight"));
  EXPECT_EQ(tensor(f, "blk.0.ffn_gate_exps.weight").ne, (std::vector<int64_t>{32, 24, 4}));
  EXPECT_EQ(f.tensor("blk.1.ffn_gate_inp.weight"), nullptr);
  expect_all_values(e, 64);
}

TEST(GgufExport, ANonFiniteWeightIsOneErrorAndNoFile) {
  TempDir d;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "MM"}, {"d_state", 8}});
  nn::Model model(test_ctx(), train::model_spec(cfg), 1);
  for (const auto& p : model.parameters())
    if (p.name == "backbone.layers.1.mixer.x_proj.weight") {
      auto v = p.tensor.to_host();
      v[5] = std::nanf("");
      Tensor(p.tensor).copy_from_host(v.data(), v.size() * sizeof(float));
    }
  const data::Tokenizer tok(small_bpe());
  try {
    train::export_gguf(model, cfg, tok, d / "x.gguf", {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.1.ssm_x.weight holds a NaN"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(d.path()));
}

TEST(GgufExport, RefusesWhatLlamaCppCannotRun) {
  auto refusal = [](json model) -> std::string {
    try {
      train::gguf_arch_for(config(std::move(model)));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string moe = refusal({{"layers", "(MMME)x2"}});
  EXPECT_NE(moe.find("llama.cpp has no architecture"), std::string::npos) << moe;
  EXPECT_NE(moe.find("Mamba1 + MoE"), std::string::npos) << moe;
  EXPECT_EQ(moe.find('\n'), std::string::npos);
  EXPECT_NE(refusal({{"layers", "MA"}}), "");                                            // not pairs
  EXPECT_NE(refusal({{"layers", "MM"}, {"expand", 3}}).find("expand 2"), std::string::npos);
  EXPECT_NE(refusal({{"layers", "MM"}, {"mamba_inner_norms", true}}), "");
  const std::string norms = refusal({{"layers", "MEMF"}});  // Jamba's pattern without its norms
  EXPECT_NE(norms.find("llama.cpp has no architecture"), std::string::npos) << norms;
  EXPECT_NE(norms.find("dt/B/C"), std::string::npos) << norms;
  EXPECT_NE(refusal({{"layers", "SESF"}}).find("E and F"), std::string::npos);            // granite mixing
  EXPECT_NE(refusal({{"layers", "SS"}, {"mamba2", {{"bias", true}}}}), "");
  const std::string rope = refusal({{"layers", "AFMF"}, {"mamba_inner_norms", true}});
  EXPECT_NE(rope.find("rotary"), std::string::npos) << rope;
  EXPECT_NE(refusal({{"layers", "MM"}, {"logits_scaling", 2.0}}), "");
  EXPECT_NE(refusal({{"layers", "MM"}, {"bidirectional_prefix", true}}).find("reverse scan"), std::string::npos);
  EXPECT_NE(refusal({{"layers", "SFAF"}, {"attention", {{"heads", 4}, {"rope_theta", 10000.0}}}, {"infill_positions", "glm2d"}})
                .find("GLM 2D positions"), std::string::npos);
  EXPECT_EQ(refusal({{"layers", "SFAF"}, {"attention", {{"heads", 4}, {"rope_theta", 10000.0}}}}), "");
  EXPECT_EQ(refusal({{"layers", "MM"}}), "");
  EXPECT_EQ(refusal({{"layers", "SFAF"}}), "");
}

TEST(GgufExportCli, ExportsAFolderAndRefusesWithoutLeavingAFile) {
  MG_REQUIRE_CLI();
  TempDir d;
  const auto cfg = config({{"vocab_size", kVocab}, {"dim", 32}, {"layers", "MM"}, {"d_state", 8}});
  nn::Model model(test_ctx(), train::model_spec(cfg), 3);
  const fs::path ck = d / "ck";
  fs::create_directories(ck);
  io::write_json_atomically(ck / "config.json", cfg.to_json());
  std::vector<std::pair<std::string, io::StTensor>> st;
  for (const auto& p : model.parameters()) {
    const auto v = p.tensor.to_host();
    io::StTensor t{io::StDType::F32, p.tensor.shape().dims(), std::vector<uint8_t>(v.size() * 4)};
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    st.emplace_back(p.name, std::move(t));
  }
  io::write_safetensors(ck / "model.safetensors", st, {{"format", "pt"}});
  data::save_bpe_model(small_bpe(), ck);

  auto run = run_on_device({"export", "--format", "gguf", "--checkpoint", ck.string(), "--out", (d / "a.gguf").string(),
                            "--type", "q8_0", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.err;
  EXPECT_NE(run.output.find("\"architecture\": \"mamba\""), std::string::npos) << run.output;
  const GgufFile f = read_gguf(d / "a.gguf");
  EXPECT_EQ(f.kv.at("general.name").str, "ck");
  EXPECT_EQ(f.kv.at("tokenizer.ggml.tokens").strings.size(), size_t(kVocab));
  // Same weights as the model it came from (F32 tensors bit for bit).
  expect_f32(f, "blk.1.attn_norm.weight", {32}, host_params(model).at("backbone.layers.1.norm.weight"));

  // An existing --out is never overwritten.
  const auto size = fs::file_size(d / "a.gguf");
  run = run_on_device({"export", "--format", "gguf", "--checkpoint", ck.string(), "--out", (d / "a.gguf").string()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("already exists"), std::string::npos) << run.err;
  EXPECT_EQ(fs::file_size(d / "a.gguf"), size);
  // Bad options: exit 2.
  run = run_on_device({"export", "--format", "gguf", "--checkpoint", ck.string(), "--out", (d / "b.gguf").string(),
                       "--type", "q4_0"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  run = run_on_device({"export", "--format", "onnx", "--checkpoint", ck.string(), "--out", (d / "b.gguf").string()});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  // A Mamba1 + MoE checkpoint: one line, exit 1, no file.
  auto moe_cfg = cfg.to_json();
  moe_cfg["model"]["layers"] = "ME";
  io::write_json_atomically(ck / "config.json", moe_cfg);
  run = run_on_device({"export", "--format", "gguf", "--checkpoint", ck.string(), "--out", (d / "c.gguf").string()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("llama.cpp has no architecture"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_FALSE(fs::exists(d / "b.gguf"));
  EXPECT_FALSE(fs::exists(d / "c.gguf"));
  // An output folder that does not exist: one error, nothing written.
  io::write_json_atomically(ck / "config.json", cfg.to_json());
  run = run_on_device({"export", "--format", "gguf", "--checkpoint", ck.string(), "--out", (d / "no" / "x.gguf").string()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_FALSE(fs::exists(d / "no"));
}

TEST(GgufExport, HuggingFaceGraniteAndJambaFoldersExportAsTheirModels) {
  // A folder in Hugging Face's layout (packed Granite experts, Jamba's per-expert tensors) loads
  // through the hybrid locator; its GGUF equals, tensor for tensor, that of the same weights
  // uploaded into the model directly.
  const json granite = json::parse(R"({
    "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "vocab_size": 300,
    "hidden_size": 32, "intermediate_size": 24, "shared_intermediate_size": 16, "num_hidden_layers": 3,
    "layer_types": ["mamba", "attention", "mamba"], "num_attention_heads": 2, "num_key_value_heads": 1,
    "mamba_n_heads": 4, "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 8, "mamba_d_conv": 4,
    "mamba_expand": 2, "num_local_experts": 4, "num_experts_per_tok": 2, "embedding_multiplier": 2.0,
    "residual_multiplier": 0.5, "logits_scaling": 3.0, "attention_multiplier": 0.2, "rms_norm_eps": 1e-5,
    "position_embedding_type": "rope", "rope_theta": 10000, "rope_scaling": null, "hidden_act": "silu",
    "tie_word_embeddings": true})");
  const json jamba = json::parse(R"({
    "architectures": ["JambaForCausalLM"], "model_type": "jamba", "vocab_size": 300, "hidden_size": 32,
    "intermediate_size": 24, "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1,
    "attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 0,
    "num_experts": 4, "num_experts_per_tok": 2, "mamba_d_state": 8, "mamba_d_conv": 4, "mamba_expand": 2,
    "mamba_dt_rank": "auto", "mamba_conv_bias": true, "mamba_proj_bias": false, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": false, "sliding_window": null, "hidden_act": "silu"})");
  for (const json& cfg_json : {granite, jamba}) {
    const bool is_granite = cfg_json["model_type"] == "granitemoehybrid";
    SCOPED_TRACE(is_granite ? "granite" : "jamba");
    TempDir d;
    io::write_json_atomically(d / "config.json", cfg_json);
    const train::Config c = train::read_hf_hybrid(d.path()).config;
    nn::Model direct(test_ctx(), train::model_spec(c), 1);
    const ref::Weights w = ref::random_weights(direct, 17);
    if (is_granite) write_hf_granite_folder(direct, w, d.path(), cfg_json);
    else write_hf_jamba_folder(direct, w, d.path(), cfg_json, false);
    ref::upload(direct, w);
    auto loaded = train::load_model(d.path(), test_ctx());
    const data::Tokenizer tok(small_bpe());
    train::export_gguf(*loaded.model, loaded.config, tok, d / "hf.gguf", {});
    train::export_gguf(direct, c, tok, d / "direct.gguf", {});
    const GgufFile a = read_gguf(d / "hf.gguf"), b = read_gguf(d / "direct.gguf");
    EXPECT_EQ(a.kv.at("general.architecture").str, is_granite ? "granitehybrid" : "jamba");
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
      EXPECT_EQ(a.tensors[i].ne, b.tensors[i].ne);
      EXPECT_TRUE(a.tensors[i].bytes == b.tensors[i].bytes) << a.tensors[i].name;
    }
    if (is_granite) {
      EXPECT_EQ(float(a.kv.at("granitehybrid.attention.scale").number), 0.2f);
      EXPECT_EQ(a.kv.at("granitehybrid.attention.head_count_kv").ints, (std::vector<int64_t>{0, 1, 0}));
    }
  }
}

TEST(GgufExportCli, JambaFolderWithASentencePieceTokenizer) {
  // A Jamba folder as Hugging Face ships one, with a SentencePiece-style tokenizer.json (legacy
  // Llama / Jamba spelling, tests/support/spm_tokenizer_files.hpp) and its ids in config.json:
  // generate puts the template's <s> before the prompt's ids, and export writes llama.cpp's "llama"
  // vocabulary padded to the model's 300 ids.
  MG_REQUIRE_CLI();
  const json jamba = json::parse(R"({
    "architectures": ["JambaForCausalLM"], "model_type": "jamba", "vocab_size": 300, "hidden_size": 32,
    "intermediate_size": 24, "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1,
    "attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 0,
    "num_experts": 4, "num_experts_per_tok": 2, "mamba_d_state": 8, "mamba_d_conv": 4, "mamba_expand": 2,
    "mamba_dt_rank": "auto", "mamba_conv_bias": true, "mamba_proj_bias": false, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": false, "sliding_window": null, "hidden_act": "silu",
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})");
  TempDir d;
  io::write_json_atomically(d / "config.json", jamba);
  const train::Config c = train::read_hf_hybrid(d.path()).config;
  nn::Model shape(test_ctx(), train::model_spec(c), 1);
  write_hf_jamba_folder(shape, ref::random_weights(shape, 23), d.path(), jamba, false);
  io::write_json_atomically(d / "tokenizer.json", spm_tokenizer_json());

  auto run = run_on_device({"generate", "--checkpoint", d.path().string(), "--prompt", "Hello the world",
                            "--temperature", "0", "--max-new-tokens", "3", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.err;
  EXPECT_NE(run.output.find("\"prompt_ids\":[1,259,279,275,284]"), std::string::npos) << run.output;

  run = run_on_device({"export", "--format", "gguf", "--checkpoint", d.path().string(), "--out", (d / "j.gguf").string()});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.err;
  const GgufFile f = read_gguf(d / "j.gguf");
  EXPECT_EQ(f.kv.at("general.architecture").str, "jamba");
  EXPECT_EQ(f.kv.at("tokenizer.ggml.model").str, "llama");
  EXPECT_EQ(f.kv.at("tokenizer.ggml.tokens").strings.size(), 300u);
  EXPECT_EQ(f.kv.at("tokenizer.ggml.scores").numbers.size(), 300u);
  EXPECT_EQ(f.kv.at("tokenizer.ggml.tokens").strings[275], "\xE2\x96\x81the");
  EXPECT_EQ(f.kv.at("tokenizer.ggml.bos_token_id").uinteger, 1u);
  EXPECT_EQ(f.kv.at("tokenizer.ggml.padding_token_id").uinteger, 0u);
  EXPECT_TRUE(f.kv.at("tokenizer.ggml.add_bos_token").boolean);
  EXPECT_TRUE(f.kv.at("tokenizer.ggml.add_space_prefix").boolean);
}
