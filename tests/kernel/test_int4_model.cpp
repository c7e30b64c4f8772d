// A model quantized with `quantize --format int4` loads everywhere a checkpoint loads: every
// parameter held as int4 in the file is exactly its compressed-tensors dequantization (in an f32
// model, an f16 model, and as the input of an NF4 base's quantization), the others are the
// original bits, the logits stay close to the fp32 model's, and a config or file that Magellano
// does not read is refused in one line. load_model (eval, generate) keeps such weights int4 on
// the device (ops::int4_linear): the same dequantized values, the same logits up to fp32
// summation order.
#include <cmath>

#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/io/int4_safetensors.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/quantize_file.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/nf4.hpp"
#include "magellano/train/adapter.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/merge.hpp"
#include "magellano/train/hf_layout.hpp"
#include "hf_hybrid_folder.hpp"
#include "sharded_weights.hpp"
#include "reference.hpp"
#include "small_model.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
namespace fs = std::filesystem;
namespace io = magellano::io;
namespace train = magellano::train;
namespace nn = magellano::nn;

namespace {

// Mamba, MoE, Mamba at width 32: with groups of 16, in_proj (128, 32), x_proj (12, 64) and
// out_proj (32, 64) of both Mamba blocks, the router (4, 32) and each of the 4 experts' w1 and w3
// (24, 32) are quantized: 15 weights. dt_proj (64, 4) and the experts' w2 (32, 24) have widths 16
// does not divide and stay fp32, as do the embedding (with the tied head), the norms and conv1d.
train::Config config() {
  return train::Config::from_json(nlohmann::json::parse(R"({"model": {
      "vocab_size": 61, "dim": 32, "layers": "MEM", "d_state": 4, "dt_rank": 4,
      "moe": {"experts": 4, "top_k": 2, "hidden": 24}}})"));
}

void write_folder(const fs::path& dir, const train::Config& cfg, const nn::Model& m) {
  fs::create_directories(dir);
  io::write_json_atomically(dir / "config.json", cfg.to_json());
  io::write_safetensors(dir / io::kSafetensorsFile, tensors_of(m.parameters()), {{"format", "pt"}});
}

std::vector<float> logits_of(const nn::Model& m) {
  magellano::autograd::NoGradScope ng;
  return m.forward(upload_i32(Shape{2, 7}, small_model_ids(14, 3))).logits.to_host();
}

// mean |a - b| / mean |b|
double relative_l1(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::fabs(double(a[i]) - b[i]), s += std::fabs(double(b[i]));
  return d / s;
}

// Each parameter of `m` loaded from `dir` against the file: an int4 weight's (rows of its)
// dequantization exactly, else nothing. Returns how many came from int4 weights.
int expect_int4_parameters_exact(const nn::Model& m, const fs::path& dir) {
  const auto set = io::SafetensorsSet::open(dir);
  const train::HfLocator locate = train::weights_locator(dir);
  int n = 0;
  for (const auto& p : m.parameters()) {
    train::HfSlice at{p.name};
    if (locate)
      for (const auto& c : locate(p.name))
        if (io::holds_weight(set, c.name)) {
          at = c;
          break;
        }
    if (!io::is_int4_weight(set, at.name)) continue;
    ++n;
    const std::vector<float> all = io::load_int4_f32(set, at.name);
    const int64_t cols = p.tensor.shape().dims().back();
    const int64_t begin = at.whole() ? 0 : at.row_begin * cols;
    const std::vector<float> want(all.begin() + begin, all.begin() + begin + p.tensor.numel());
    EXPECT_EQ(p.tensor.to_host(), want) << p.name << " from " << at.name;
  }
  return n;
}

// Each int4 Linear of `m` (loaded from `dir` by load_model) against the file: its dequantized
// weight equals (the rows of) the file's dequantization exactly. Returns how many there are.
int expect_int4_linears_exact(nn::Model& m, const fs::path& dir) {
  const auto set = io::SafetensorsSet::open(dir);
  const train::HfLocator locate = train::weights_locator(dir);
  int n = 0;
  for (const auto& l : m.linears()) {
    if (l.linear->storage() != nn::WeightStorage::int4) continue;
    train::HfSlice at{l.path + ".weight"};
    if (locate)
      for (const auto& c : locate(at.name))
        if (io::holds_weight(set, c.name)) {
          at = c;
          break;
        }
    if (!io::is_int4_weight(set, at.name)) continue;
    ++n;
    const std::vector<float> all = io::load_int4_f32(set, at.name);
    const int64_t cols = l.linear->in_features(), begin = at.whole() ? 0 : at.row_begin * cols;
    const std::vector<float> want(all.begin() + begin, all.begin() + begin + l.linear->out_features() * cols);
    EXPECT_EQ(magellano::ops::dequantize_int4(*l.linear->int4).to_host(), want) << l.path << " from " << at.name;
  }
  return n;
}

io::QuantizeOptions int4(int64_t group) {
  io::QuantizeOptions o;
  o.format = io::QuantFormat::int4;
  o.group_size = group;
  return o;
}

}  // namespace

TEST(Int4Model, LoadsAsItsDequantizationCloseToFp32) {
  TempDir d;
  const train::Config cfg = config();
  const nn::Model original(test_ctx(), train::model_spec(cfg), 5);
  write_folder(d / "base", cfg, original);
  const auto rep = io::quantize_checkpoint_dir(test_ctx(), d / "base", d / "q", {}, int4(16));
  EXPECT_EQ(rep.tensors_quantized, 15);
  EXPECT_EQ(rep.group_misfits.size(), 2u + 4u);  // dt_proj twice, w2 of each expert
  const auto set = io::SafetensorsSet::open(d / "q");
  // An fp32 model reads the int4 weights dequantized (what --init-from does).
  nn::Model dense(test_ctx(), train::model_spec(cfg), 99);
  train::load_weights(d / "q", dense);
  const auto a = original.parameters(), b = dense.parameters();
  ASSERT_EQ(a.size(), b.size());
  int quantized = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].name, b[i].name);
    if (io::is_int4_weight(set, a[i].name)) {
      ++quantized;
      EXPECT_EQ(b[i].tensor.to_host(), io::load_int4_f32(set, a[i].name)) << a[i].name;
      EXPECT_NE(b[i].tensor.to_host(), a[i].tensor.to_host()) << a[i].name;
    } else {
      EXPECT_EQ(b[i].tensor.to_host(), a[i].tensor.to_host()) << a[i].name;
    }
  }
  EXPECT_EQ(quantized, 15);
  // The logits move by the weights' rounding: int4 in groups of 16 misses each weight by up to
  // half a step (1/15 of its group's range), ~8% of its size on average. Measured on PoCL, as
  // mean |logit - logit_fp32| / mean |logit_fp32| over 2 x 7 tokens of this random model: int4
  // 0.15; NF4 in blocks of 64 (the project's other 4-bit format, checked beside it) 0.21; a
  // model of other random weights 1.29. So: int4 below 0.25 and below NF4's error, while a
  // weight loaded wrongly (transposed, unscaled, a wrong group) moves them on the scale of an
  // unrelated model.
  // load_model (eval, generate) keeps them int4 on the device: 15 int4 Linears of the file's
  // group size, exactly the file's dequantization, the same logits up to summation order
  // (relative 1e-5, absolute 1e-5: fp32 dot products of up to 64 terms in another order).
  const auto loaded = train::load_model(d / "q", test_ctx());
  EXPECT_EQ(loaded.config.model, cfg.model);
  EXPECT_EQ(expect_int4_linears_exact(*loaded.model, d / "q"), 15);
  for (const auto& l : loaded.model->linears())
    if (l.linear->int4) EXPECT_EQ(l.linear->int4->group_size, 16) << l.path;
  const std::vector<float> want = logits_of(original), got = logits_of(*loaded.model);
  expect_close(got, to_f64(logits_of(dense)), 1e-5, 1e-5, "int4 on the device vs dequantized at load");
  const double int4_error = relative_l1(got, want);
  EXPECT_GT(int4_error, 0.0) << "the weights were not quantized";
  EXPECT_LT(int4_error, 0.25);
  io::quantize_checkpoint_dir(test_ctx(), d / "base", d / "nf4");
  const double nf4_error = relative_l1(logits_of(*train::load_model(d / "nf4", test_ctx()).model), want);
  EXPECT_LT(int4_error, nf4_error);  // 16 levels per 16 weights (5 bits each) against NF4's per 64

  // --init-from / resume read the folder with load_weights: the same values.
  nn::Model fresh(test_ctx(), train::model_spec(cfg), 99);
  EXPECT_GT(relative_l1(logits_of(fresh), want), 1.0);  // the unrelated model of the comment above
  train::load_weights(d / "q", fresh);
  EXPECT_EQ(logits_of(fresh), logits_of(dense));
}

TEST(Int4Model, LoadsIntoF16WeightsAndAnNf4Base) {
  TempDir d;
  const train::Config cfg = config();
  const nn::Model original(test_ctx(), train::model_spec(cfg), 5);
  write_folder(d / "base", cfg, original);
  io::quantize_checkpoint_dir(test_ctx(), d / "base", d / "q", {}, int4(16));
  const auto set = io::SafetensorsSet::open(d / "q");
  // fp16 weights: the dequantized values are fp16 numbers (fp16 scales), so they load exactly.
  nn::ModelSpec half = train::model_spec(cfg);
  half.weight_dtype = magellano::DType::f16;
  nn::Model h(test_ctx(), half, 7);
  train::load_weights(d / "q", h);
  int f16 = 0;
  for (const auto& p : h.parameters())
    if (io::is_int4_weight(set, p.name)) {
      f16 += p.tensor.dtype() == magellano::DType::f16;
      EXPECT_EQ(p.tensor.to_host(), io::load_int4_f32(set, p.name)) << p.name;
    }
  EXPECT_EQ(f16, 15);
  const auto full = train::load_model(d / "q", test_ctx());
  expect_close(logits_of(h), to_f64(logits_of(*full.model)), 1e-2, 1e-3, "fp16 model vs fp32 model of the int4 file");
  // An NF4 base (QLoRA): each int4 weight is dequantized, then quantized to NF4 like any fp32 weight.
  train::LoRASection lora;
  lora.rank = 2, lora.alpha = 4;
  lora.target_modules = {"in_proj", "out_proj"};
  lora.base_precision = nn::WeightStorage::nf4;
  const auto q = train::load_model(d / "q", test_ctx(), &lora);
  int nf4 = 0;
  for (const auto& l : q.model->linears()) {
    if (l.linear->storage() != nn::WeightStorage::nf4 || !io::is_int4_weight(set, l.path + ".weight")) continue;
    ++nf4;
    const Tensor w = Tensor::from_host(test_ctx(), Shape{l.linear->out_features(), l.linear->in_features()},
                                       io::load_int4_f32(set, l.path + ".weight"));
    EXPECT_EQ(magellano::ops::dequantize_nf4(*l.linear->nf4).to_host(),
              magellano::ops::dequantize_nf4(magellano::ops::quantize_nf4(w)).to_host())
        << l.path;
  }
  EXPECT_EQ(nf4, 15);
  // NF4's rounding on top of int4's: measured 0.32 against the int4 model (NF4 of the fp32
  // weights: 0.21 against fp32), far from an unrelated model's 1.29.
  EXPECT_LT(relative_l1(logits_of(*q.model), logits_of(*full.model)), 0.45);
}

// QLoRA on an int4 file (lora.base_precision int4, the file's group size): the int4 weights load
// as stored; merge-adapter then dequantizes, adds (alpha / r) B·A and quantizes again in the same
// group size: the codes and scales equal the float64 reference's quantization of the float64
// merged weight W' + (alpha / r) B·A (W' the file's dequantization). The device forms B·A in
// fp32 and adds in fp32 (a relative 1e-7 from the float64 sum), which moves a code only for a
// value within that distance of a rounding boundary: none among these 15 weights.
TEST(Int4Model, QLoRAOnAnInt4FileAndMergeRequantizes) {
  TempDir d;
  const train::Config cfg = config();
  const nn::Model original(test_ctx(), train::model_spec(cfg), 5);
  write_folder(d / "base", cfg, original);
  io::quantize_checkpoint_dir(test_ctx(), d / "base", d / "q", {}, int4(16));
  train::LoRASection lora;
  lora.rank = 2, lora.alpha = 4;
  lora.target_modules = {"in_proj", "x_proj", "out_proj", "gate", "experts"};
  lora.base_precision = nn::WeightStorage::int4;
  lora.int4_group_size = 16;
  auto q = train::load_model(d / "q", test_ctx(), &lora);
  EXPECT_EQ(expect_int4_linears_exact(*q.model, d / "q"), 15);
  randomize_adapters(*q.model, 77);
  train::save_adapter(d / "adapter", *q.model, lora, "");
  const auto rep = train::merge_adapter(d / "q", d / "adapter", d / "merged", test_ctx());
  EXPECT_TRUE(rep.requantized);
  EXPECT_GT(rep.requant_mean_abs_error, 0.0);
  const auto base = io::SafetensorsSet::open(d / "q"), merged = io::SafetensorsSet::open(d / "merged");
  const auto adapter = io::SafetensorsSet::open(d / "adapter" / "adapter_model.safetensors");
  io::check_quantization_config(d / "merged");  // config.json still says what the weights are
  EXPECT_EQ(io::int4_weight_names(merged), io::int4_weight_names(base));
  int checked = 0;
  for (const auto& l : q.model->linears()) {
    const std::string name = l.path + ".weight";
    if (!l.linear->lora || !io::is_int4_weight(base, name)) continue;
    const magellano::quant::Int4Weight got = io::load_int4(merged, name);
    const int64_t rows = got.rows, cols = got.cols;
    EXPECT_EQ(got.group_size, 16) << name;
    // float64: W' + (alpha / r) B·A
    const std::vector<float> w = io::load_int4_f32(base, name);
    const std::vector<float> a = adapter.read_f32("base_model.model." + l.path + ".lora_A.weight");
    const std::vector<float> b = adapter.read_f32("base_model.model." + l.path + ".lora_B.weight");
    Vec want(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        double s = 0;
        for (int64_t k = 0; k < lora.rank; ++k) s += double(b[r * lora.rank + k]) * a[k * cols + c];
        want[r * cols + c] = w[r * cols + c] + lora.alpha / double(lora.rank) * s;
      }
    const ref::Int4Ref wq = ref::int4_quantize(want, rows, cols, 16);
    EXPECT_EQ(ref::int4_unpack(got.packed, rows, cols), wq.codes) << name;
    EXPECT_EQ(to_f64(got.scales), wq.scales) << name;
    EXPECT_NE(got.packed, io::load_int4(base, name).packed) << name << ": the adapter changed nothing";
    ++checked;
  }
  EXPECT_EQ(checked, 15);
  // The merged folder loads (int4 on the device) and gives the logits of the adapted model up
  // to the re-quantization: measured 0.29 (these random adapters move the weights by about
  // their own size, so groups' ranges and steps change); an unrelated model: above 1.
  const auto m = train::load_model(d / "merged", test_ctx());
  EXPECT_LT(relative_l1(logits_of(*m.model), logits_of(*q.model)), 0.5);
}

TEST(Int4Model, WhatMagellanoDoesNotReadIsRefusedInOneLine) {
  TempDir d;
  const train::Config cfg = config();
  const nn::Model original(test_ctx(), train::model_spec(cfg), 5);
  write_folder(d / "base", cfg, original);
  io::quantize_checkpoint_dir(test_ctx(), d / "base", d / "q", {}, int4(16));
  // An 8-bit scheme in config.json: refused before any weight is read.
  auto j = io::read_json(d / "q" / "config.json");
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 8;
  io::write_json_atomically(d / "q" / "config.json", j);
  expect_error([&] { train::load_model(d / "q", test_ctx()); },
               (d / "q" / "config.json").string() + ": quantization_config group 'group_0' has weights of num_bits 8");
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 4;
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"] = false;
  io::write_json_atomically(d / "q" / "config.json", j);
  expect_error([&] { train::load_model(d / "q", test_ctx()); }, "has asymmetric weights");
  // A weight's scales missing from the file: the weight is named.
  j["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"] = true;
  io::write_json_atomically(d / "q" / "config.json", j);
  const auto set = io::SafetensorsSet::open(d / "q");
  std::vector<std::pair<std::string, io::StTensor>> kept;
  for (const auto& n : set.names())
    if (n != "backbone.layers.0.mixer.out_proj.weight_scale") kept.emplace_back(n, set.read(n));
  fs::remove(d / "q" / io::kSafetensorsFile);
  io::write_safetensors(d / "q" / io::kSafetensorsFile, kept);
  expect_error([&] { train::load_model(d / "q", test_ctx()); },
               "int4 weight 'backbone.layers.0.mixer.out_proj.weight' is missing "
               "'backbone.layers.0.mixer.out_proj.weight_scale'");
}

// A Hugging Face Granite 4.0-H folder: its shared MLP's input_linear (2Fs, D) = [w1; w3] is one
// int4 weight in the file, and each of w1 and w3 is read as rows of its dequantization.
TEST(Int4Model, HuggingFaceHybridRowsOfAnInt4Weight) {
  TempDir d;
  const nlohmann::json config = nlohmann::json::parse(R"({
    "architectures": ["GraniteMoeHybridForCausalLM"], "model_type": "granitemoehybrid", "vocab_size": 61,
    "hidden_size": 32, "intermediate_size": 24, "shared_intermediate_size": 16, "num_hidden_layers": 3,
    "layer_types": ["mamba", "attention", "mamba"], "num_attention_heads": 2, "num_key_value_heads": 1,
    "mamba_n_heads": 4, "mamba_d_head": "auto", "mamba_n_groups": 1, "mamba_d_state": 8, "mamba_d_conv": 4,
    "mamba_expand": 2, "num_local_experts": 4, "num_experts_per_tok": 2, "embedding_multiplier": 2.0,
    "residual_multiplier": 0.5, "logits_scaling": 3.0, "attention_multiplier": 0.2, "rms_norm_eps": 1e-5,
    "position_embedding_type": "nope", "rope_theta": 10000, "rope_scaling": null, "hidden_act": "silu",
    "tie_word_embeddings": true})");
  fs::create_directories(d / "base");
  io::write_json_atomically(d / "base" / "config.json", config);
  const nn::Model shape(test_ctx(), train::model_spec(train::read_hf_hybrid(d / "base").config), 1);
  write_hf_granite_folder(shape, ref::random_weights(shape, 92), d / "base", config);
  const auto rep = io::quantize_checkpoint_dir(test_ctx(), d / "base", d / "q", {}, int4(16));
  EXPECT_GT(rep.tensors_quantized, 0);
  const auto q = train::load_model(d / "q", test_ctx());
  EXPECT_TRUE(q.hugging_face);
  // int4 on the device (load_model): rows of the packed words and scales.
  EXPECT_EQ(expect_int4_linears_exact(*q.model, d / "q"), rep.tensors_quantized + 3);  // each shared MLP's input_linear gives two
  // Dequantized into an fp32 model (load_weights): rows of the dequantization.
  nn::Model dense(test_ctx(), train::model_spec(train::read_hf_hybrid(d / "q").config), 1);
  train::load_weights(d / "q", dense, train::weights_locator(d / "q"));
  EXPECT_EQ(expect_int4_parameters_exact(dense, d / "q"), rep.tensors_quantized + 3);
  expect_close(logits_of(*q.model), to_f64(logits_of(dense)), 1e-5, 1e-5, "int4 on the device vs dequantized");
  const auto base = train::load_model(d / "base", test_ctx());
  const double err = relative_l1(logits_of(*q.model), logits_of(*base.model));
  EXPECT_GT(err, 0.0);
  EXPECT_LT(err, 0.15);  // measured 0.04 (this model's logits are larger: Granite's multipliers)
}
