// NF4 weights in safetensors files: transformers' bitsandbytes 4-bit layout (read from a file
// bitsandbytes itself produced, and written back), the streaming writer, the tensor-by-tensor
// quantizer, and `magellano quantize` with its bad-input paths. All comparisons are exact.
#include <bit>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"
#include "magellano/io/nf4_safetensors.hpp"
#include "magellano/io/safetensors_stream.hpp"
#include "magellano/quant/nf4_reference.hpp"
#include "magellano/io/quantize_file.hpp"
#include "error_text.hpp"
#include "project_files.hpp"

using namespace magellano;
using namespace mgtest;
namespace fs = std::filesystem;

namespace {

// $MAGELLANO_TEST_FIXTURES (e.g. on the GPU machine), else tests/fixtures of the source tree.
fs::path fixture_path() { return fixture_file("nf4_bnb.safetensors"); }

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

io::StTensor f32_st(const std::vector<int64_t>& shape, const std::vector<float>& v) {
  io::StTensor t{io::StDType::F32, shape, std::vector<uint8_t>(v.size() * 4)};
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

io::StTensor f16_st(const std::vector<int64_t>& shape, const std::vector<float>& v) {
  io::StTensor t{io::StDType::F16, shape, std::vector<uint8_t>(v.size() * 2)};
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = io::f32_to_f16(v[i]);
    std::memcpy(t.bytes.data() + 2 * i, &h, 2);
  }
  return t;
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i])) << what << "[" << i << "]";
}

// A small model file: every kind of tensor the quantizer must quantize or copy.
std::vector<std::pair<std::string, io::StTensor>> small_model() {
  std::vector<std::pair<std::string, io::StTensor>> t;
  t.emplace_back("backbone.embeddings.weight", f32_st({50, 16}, to_f32(randn(800, 1, 0.02))));
  t.emplace_back("backbone.layers.0.mixer.in_proj.weight", f32_st({40, 16}, to_f32(randn(640, 2, 0.1))));
  t.emplace_back("backbone.layers.0.mixer.conv1d.bias", f32_st({20}, to_f32(randn(20, 3))));
  t.emplace_back("backbone.layers.0.norm.weight", f32_st({16}, std::vector<float>(16, 1.0f)));
  t.emplace_back("backbone.layers.0.mixer.out_proj.weight", f16_st({16, 23}, to_f32(randn(368, 4, 0.1))));
  t.emplace_back("lm_head.weight", f32_st({50, 16}, to_f32(randn(800, 5, 0.02))));
  io::StTensor ids{io::StDType::I64, {3}, std::vector<uint8_t>(24, 7)};
  t.emplace_back("meta.ids", ids);
  return t;
}

}  // namespace

TEST(NF4Files, LoadsTheLayoutBitsandbytesWrites) {
  // layout.proj.* was saved by bitsandbytes' Linear4bit._save_to_state_dict (as transformers
  // saves 4-bit models); its dequantization by bitsandbytes is layout.proj.dequant.
  const auto r = io::SafetensorsReader::open(fixture_path());
  EXPECT_EQ(r.shape("layout.proj.weight"), (std::vector<int64_t>{480, 1}));
  ASSERT_TRUE(io::is_nf4_weight(r, "layout.proj.weight"));
  EXPECT_FALSE(io::is_nf4_weight(r, "layout.proj.bias"));
  EXPECT_EQ(io::nf4_weight_names(r), std::vector<std::string>{"layout.proj.weight"});
  const ops::NF4Weight w = io::load_nf4(test_ctx(), r, "layout.proj.weight");
  EXPECT_EQ(w.shape, (Shape{24, 40}));
  expect_same_bits(ops::dequantize_nf4(w).to_host(), r.read_f32("layout.proj.dequant"),
                   "dequantized bitsandbytes weight");
  // Quantizing the same fp32 weight ourselves gives bitsandbytes' bytes.
  const std::vector<float> wf = r.read_f32("layout.proj.weight_fp32");
  const ops::NF4Weight ours = ops::quantize_nf4(Tensor::from_host(test_ctx(), Shape{24, 40}, wf));
  EXPECT_EQ(ours.packed.to_host_u8(), r.read("layout.proj.weight").bytes);
  if (ours.offset == w.offset) {
    EXPECT_EQ(ours.absmax_q.to_host_u8(), r.read("layout.proj.weight.absmax").bytes);
  }
}

TEST(NF4Files, QuantStateJsonHasBitsandbytesKeys) {
  const auto r = io::SafetensorsReader::open(fixture_path());
  const auto b = r.read("layout.proj.weight.quant_state.bitsandbytes__nf4").bytes;
  const auto theirs = nlohmann::ordered_json::parse(std::string(b.begin(), b.end()));
  const float offset = static_cast<float>(theirs["nested_offset"].get<double>());
  const std::string mine_text = io::nf4_quant_state_json({24, 40}, offset);
  const auto mine = nlohmann::ordered_json::parse(mine_text);
  std::vector<std::string> k1, k2;
  for (auto& [k, v] : theirs.items()) k1.push_back(k);
  for (auto& [k, v] : mine.items()) k2.push_back(k);
  EXPECT_EQ(k1, k2);  // same keys, same order
  for (const char* k : {"quant_type", "blocksize", "dtype", "shape", "nested_blocksize", "nested_dtype"})
    EXPECT_EQ(mine[k], theirs[k]) << k;
  EXPECT_EQ(static_cast<float>(mine["nested_offset"].get<double>()), offset);
  // Fixed width: the length never depends on the offset (the streaming writer relies on it).
  for (float o : {0.0f, 1e-38f, 0.04331591f, 3.0e38f, 12345.678f})
    EXPECT_EQ(io::nf4_quant_state_json({24, 40}, o).size(), mine_text.size()) << o;
  EXPECT_THROW(io::nf4_quant_state_json({2, 2}, NAN), magellano::Error);
}

TEST(NF4Files, WriteAndLoadRoundTrip) {
  TempDir dir;
  const std::vector<float> wf = to_f32(randn(33 * 70, 8, 0.05));
  const ops::NF4Weight q = ops::quantize_nf4(Tensor::from_host(test_ctx(), Shape{33, 70}, wf));
  const auto parts = io::nf4_to_st("m.w.weight", q);
  const auto entries = io::nf4_entries("m.w.weight", {33, 70});
  ASSERT_EQ(parts.size(), entries.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    EXPECT_EQ(parts[i].first, entries[i].name);
    EXPECT_EQ(parts[i].second.shape, entries[i].shape) << entries[i].name;
    EXPECT_EQ(parts[i].second.dtype, entries[i].dtype) << entries[i].name;
  }
  io::write_safetensors(dir / "w.safetensors", parts);
  const auto r = io::SafetensorsReader::open(dir / "w.safetensors");
  const ops::NF4Weight back = io::load_nf4(test_ctx(), r, "m.w.weight");
  EXPECT_EQ(back.shape, q.shape);
  EXPECT_EQ(std::bit_cast<uint32_t>(back.offset), std::bit_cast<uint32_t>(q.offset));
  expect_same_bits(ops::dequantize_nf4(back).to_host(), ops::dequantize_nf4(q).to_host(), "round trip");
}

TEST(NF4Files, LoadRejectsIncompleteOrForeignStates) {
  TempDir dir;
  const ops::NF4Weight q = ops::quantize_nf4(upload(Shape{8, 64}, randn(512, 9)));
  auto parts = io::nf4_to_st("w", q);
  const auto expect_error = [&](std::vector<std::pair<std::string, io::StTensor>> p, const std::string& msg) {
    io::write_safetensors(dir / "bad.safetensors", p);
    const auto r = io::SafetensorsReader::open(dir / "bad.safetensors");
    try {
      io::load_nf4(test_ctx(), r, "w");
      ADD_FAILURE() << "no error for " << msg;
    } catch (const magellano::Error& e) {
      EXPECT_TRUE(has(e.what(), msg)) << e.what();
    }
  };
  auto missing = parts;
  missing.erase(missing.begin() + 3);  // nested_absmax
  expect_error(missing, "double-quantized");
  auto state = parts;
  const std::string fp4 = "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [8, 64], "
                          "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.5}";
  state.back().second = io::StTensor{io::StDType::U8, {int64_t(fp4.size())}, {fp4.begin(), fp4.end()}};
  expect_error(state, "not \"nf4\"");
  auto shape = parts;
  const std::string wrong = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [8, 65], "
                            "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.5}";
  shape.back().second = io::StTensor{io::StDType::U8, {int64_t(wrong.size())}, {wrong.begin(), wrong.end()}};
  expect_error(shape, "needs");
}

TEST(NF4Files, StreamWriterEqualsWriteSafetensors) {
  TempDir dir;
  const auto tensors = small_model();
  io::write_safetensors(dir / "a.safetensors", tensors, {{"format", "pt"}});
  std::vector<io::StEntry> entries;
  for (const auto& [n, t] : tensors) entries.push_back({n, t.dtype, t.shape});
  {
    io::SafetensorsStreamWriter w(dir / "b.safetensors", entries, {{"format", "pt"}});
    for (const auto& [n, t] : tensors) w.write(n, t);
    w.commit();
    EXPECT_EQ(w.bytes_total(), fs::file_size(dir / "b.safetensors"));
  }
  EXPECT_EQ(read_all(dir / "a.safetensors"), read_all(dir / "b.safetensors"));
  // Out of order, wrong size, or never finished: an error, and no file under the name.
  {
    io::SafetensorsStreamWriter w(dir / "c.safetensors", entries);
    EXPECT_THROW(w.write(tensors[1].first, tensors[1].second), magellano::Error);
    EXPECT_THROW(w.write(tensors[0].first, tensors[0].second.bytes.data(), 3), magellano::Error);
    w.write(tensors[0].first, tensors[0].second);
    EXPECT_THROW(w.commit(), magellano::Error);
  }
  EXPECT_FALSE(fs::exists(dir / "c.safetensors"));
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_FALSE(has(e.path().filename().string(), ".tmp-")) << e.path();
}

TEST(NF4Files, QuantizeFileQuantizesLinearWeightsAndCopiesTheRest) {
  TempDir dir;
  const auto tensors = small_model();
  io::write_safetensors(dir / "in.safetensors", tensors, {{"format", "pt"}});
  std::vector<std::string> seen;
  const auto rep = io::quantize_safetensors_file(
      test_ctx(), dir / "in.safetensors", dir / "out.safetensors",
      [&](const std::string& n, bool q) { seen.push_back(n + (q ? ":nf4" : ":copy")); });
  EXPECT_EQ(rep.tensors_quantized, 2);
  EXPECT_EQ(rep.tensors_copied, 5);
  EXPECT_EQ(rep.params_quantized, 640 + 368);
  EXPECT_EQ(rep.skipped_linear, (std::vector<std::string>{"backbone.embeddings.weight", "lm_head.weight"}));
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(rep.bytes_in, fs::file_size(dir / "in.safetensors"));
  EXPECT_EQ(rep.bytes_out, fs::file_size(dir / "out.safetensors"));
  EXPECT_GT(rep.error.mean_abs(), 0.0);
  EXPECT_LT(rep.error.relative_l1(), 0.2);  // NF4 on Gaussian weights: ~0.09

  const auto in = io::SafetensorsReader::open(dir / "in.safetensors");
  const auto out = io::SafetensorsReader::open(dir / "out.safetensors");
  EXPECT_EQ(out.metadata(), in.metadata());
  for (const auto& [n, t] : tensors) {
    if (n.find("proj.weight") != std::string::npos) {
      ASSERT_TRUE(io::is_nf4_weight(out, n)) << n;
      const ops::NF4Weight got = io::load_nf4(test_ctx(), out, n);
      const std::vector<float> w = in.read_f32(n);
      const ops::NF4Weight want =
          ops::quantize_nf4(Tensor::from_host(test_ctx(), Shape(t.shape), w));
      expect_same_bits(ops::dequantize_nf4(got).to_host(), ops::dequantize_nf4(want).to_host(), n);
      const auto js = out.read(n + io::kNF4QuantStateSuffix).bytes;
      const auto state = nlohmann::json::parse(std::string(js.begin(), js.end()));
      EXPECT_EQ(state["dtype"], t.dtype == io::StDType::F16 ? "float16" : "float32") << n;
    } else {
      EXPECT_EQ(out.read(n).bytes, t.bytes) << n;
      EXPECT_EQ(out.dtype(n), t.dtype) << n;
    }
  }
  // The output exists now: a second run refuses to overwrite it.
  EXPECT_THROW(io::quantize_safetensors_file(test_ctx(), dir / "in.safetensors", dir / "out.safetensors"),
               magellano::Error);
}

TEST(NF4Files, QuantizeCommandOnACheckpointFolder) {
  MG_REQUIRE_CLI();
  TempDir dir;
  fs::create_directories(dir / "ckpt");
  io::write_safetensors(dir / "ckpt" / "model.safetensors", small_model());
  std::ofstream(dir / "ckpt" / "config.json") << R"({"model_type": "mamba", "hidden_size": 16})";
  std::ofstream(dir / "ckpt" / "tokenizer.json") << R"({"version": "1.0"})";
  auto r = run_cli({"quantize", "--in", (dir / "ckpt").string(), "--out", (dir / "q").string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "2 quantized to NF4, 5 copied")) << r.output;
  EXPECT_TRUE(has(r.output, "bits per parameter")) << r.output;
  EXPECT_TRUE(has(r.output, "mean |w - w'|")) << r.output;
  const auto cfg = nlohmann::json::parse(read_all(dir / "q" / "config.json"));
  EXPECT_EQ(cfg["hidden_size"], 16);
  EXPECT_EQ(cfg["quantization_config"]["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(cfg["quantization_config"]["bnb_4bit_use_double_quant"], true);
  EXPECT_EQ(cfg["quantization_config"]["llm_int8_skip_modules"],
            (std::vector<std::string>{"backbone.embeddings", "lm_head"}));
  EXPECT_EQ(read_all(dir / "q" / "tokenizer.json"), R"({"version": "1.0"})");
  const auto out = io::SafetensorsReader::open(dir / "q" / "model.safetensors");
  EXPECT_EQ(io::nf4_weight_names(out).size(), 2u);

  // --json reports the same numbers in machine-readable form.
  r = run_cli({"quantize", "--in", (dir / "ckpt" / "model.safetensors").string(), "--out",
               (dir / "q.safetensors").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["tensors_quantized"], 2);
  EXPECT_EQ(j["params_quantized"], 640 + 368);
  EXPECT_EQ(j["bytes_out"], fs::file_size(dir / "q.safetensors"));
  // 4.127 bits of data, plus the two code books and JSON of each weight (small tensors here).
  EXPECT_GT(j["bits_per_param"].get<double>(), 4.127);
  EXPECT_LT(j["bits_per_param"].get<double>(), 4.127 + 8.0 * 2 * (1088 + 200) / 1008);
}

TEST(NF4Files, QuantizeCommandBadInput) {
  MG_REQUIRE_CLI();
  TempDir dir;
  io::write_safetensors(dir / "ok.safetensors", small_model());
  // Missing input.
  auto r = run_cli({"quantize", "--in", (dir / "nope.safetensors").string(), "--out", (dir / "o1").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: quantize: the input")) << r.output;
  EXPECT_FALSE(fs::exists(dir / "o1"));
  // Existing output: refused, left untouched.
  std::ofstream(dir / "exists.safetensors") << "keep me";
  r = run_cli({"quantize", "--in", (dir / "ok.safetensors").string(), "--out", (dir / "exists.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "already exists")) << r.output;
  EXPECT_EQ(read_all(dir / "exists.safetensors"), "keep me");
  // Truncated file.
  const std::string full = read_all(dir / "ok.safetensors");
  std::ofstream(dir / "cut.safetensors", std::ios::binary) << full.substr(0, full.size() - 100);
  r = run_cli({"quantize", "--in", (dir / "cut.safetensors").string(), "--out", (dir / "o2.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: safetensors file")) << r.output;
  EXPECT_FALSE(fs::exists(dir / "o2.safetensors"));
  // A foreign file.
  std::ofstream(dir / "notes.txt") << "these are not weights, just a longer line of text";
  r = run_cli({"quantize", "--in", (dir / "notes.txt").string(), "--out", (dir / "o3.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "error: safetensors file")) << r.output;
  // A folder without weights.
  fs::create_directories(dir / "empty");
  r = run_cli({"quantize", "--in", (dir / "empty").string(), "--out", (dir / "o4").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "has no model.safetensors")) << r.output;
  EXPECT_FALSE(fs::exists(dir / "o4"));
  // A weight holding NaN: named in the error, no output.
  auto nan_model = small_model();
  std::memcpy(nan_model[1].second.bytes.data() + 8, "\x00\x00\xc0\x7f", 4);  // a quiet NaN
  io::write_safetensors(dir / "nan.safetensors", nan_model);
  r = run_cli({"quantize", "--in", (dir / "nan.safetensors").string(), "--out", (dir / "o5.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "'backbone.layers.0.mixer.in_proj.weight'") && has(r.output, "NaN")) << r.output;
  EXPECT_FALSE(fs::exists(dir / "o5.safetensors"));
  // Nothing half-written anywhere.
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_FALSE(has(e.path().filename().string(), ".tmp")) << e.path();
}
