// int4 weights in safetensors files, in compressed-tensors' pack-quantized layout
// (io/int4_safetensors.hpp): the three tensors of a weight, the reader's checks of bad files
// and of quantization_config schemes Magellano does not read, the file and folder quantizer
// with --format int4 (against the float64 reference, byte for byte the same on any number of
// threads, Inf and NaN refused), the config block as llm-compressor writes it, and `magellano
// quantize --format int4` with its bad options. All comparisons of values are exact.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/io/int4_safetensors.hpp"
#include "magellano/io/quantize_file.hpp"
#include "project_files.hpp"
#include "reference.hpp"
#include "temp_dir.hpp"

using namespace magellano;
using namespace mgtest;
namespace fs = std::filesystem;
using quant::FloatType;
using Named = std::vector<std::pair<std::string, io::StTensor>>;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// A tensor of `dt` holding v (rounded to dt).
io::StTensor float_st(io::StDType dt, const std::vector<int64_t>& shape, const std::vector<float>& v) {
  io::StTensor t{dt, shape, std::vector<uint8_t>(v.size() * io::st_dtype_size(dt))};
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == io::StDType::F32) {
      std::memcpy(t.bytes.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = dt == io::StDType::F16 ? io::f32_to_f16(v[i]) : io::f32_to_bf16(v[i]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

// A small model: with groups of 16, in_proj, out_proj (f16) and dt_proj (bf16) are quantized;
// x_proj's width 20 is not a multiple of 16, so it stays dense, like the embedding, the norm
// and lm_head.
Named small_model() {
  Named t;
  t.emplace_back("backbone.embeddings.weight", float_st(io::StDType::F32, {50, 32}, to_f32(randn(1600, 1, 0.02))));
  t.emplace_back("backbone.layers.0.mixer.in_proj.weight", float_st(io::StDType::F32, {40, 32}, to_f32(randn(1280, 2, 0.1))));
  t.emplace_back("backbone.layers.0.mixer.x_proj.weight", float_st(io::StDType::F32, {24, 20}, to_f32(randn(480, 3, 0.1))));
  t.emplace_back("backbone.layers.0.mixer.dt_proj.weight", float_st(io::StDType::BF16, {32, 16}, to_f32(randn(512, 4, 0.1))));
  t.emplace_back("backbone.layers.0.norm.weight", float_st(io::StDType::F32, {32}, std::vector<float>(32, 1.0f)));
  t.emplace_back("backbone.layers.0.mixer.out_proj.weight", float_st(io::StDType::F16, {16, 48}, to_f32(randn(768, 5, 0.1))));
  t.emplace_back("lm_head.weight", float_st(io::StDType::F32, {50, 32}, to_f32(randn(1600, 6, 0.02))));
  t.emplace_back("meta.ids", io::StTensor{io::StDType::I64, {3}, std::vector<uint8_t>(24, 7)});
  return t;
}

io::QuantizeOptions int4_options(int64_t group) {
  io::QuantizeOptions o;
  o.format = io::QuantFormat::int4;
  o.group_size = group;
  return o;
}

bool is_quantized_name(const std::string& n) {
  return n.find("in_proj") != std::string::npos || n.find("out_proj") != std::string::npos ||
         n.find("dt_proj") != std::string::npos;
}

// The config.json block llm-compressor 0.14 / compressed-tensors 0.20.1 write (ModelCompressor.
// update_config) for QuantizationModifier's W4A16 scheme with group_size 16, keys sorted.
const char* kLlmCompressorConfig = R"({
  "config_groups": {"group_0": {"format": "pack-quantized", "input_activations": null, "output_activations": null,
    "targets": ["Linear"], "weights": {"dynamic": false, "group_size": 16, "num_bits": 4,
    "observer": "memoryless_minmax", "strategy": "group", "symmetric": true, "type": "int"}}},
  "format": "pack-quantized", "global_compression_ratio": null,
  "ignore": ["backbone.embeddings", "backbone.layers.0.mixer.x_proj", "lm_head"],
  "kv_cache_scheme": null, "moe_sparsity_config": null, "quant_method": "compressed-tensors",
  "quantization_status": "compressed", "sparsity_config": {}, "transform_config": {}, "version": "0.20.1"})";

// Weights large enough that quantize splits each into several blocks of rows for its threads
// (over 65,536 values), at odd row counts, in the three float dtypes, for groups of 12 (which
// straddle words); scales over many binades (fp16 subnormal ones, all-zero groups); plus a
// small weight, a copied norm and a width 12 does not divide.
constexpr int64_t kThreadedGroup = 12;
Named threaded_model() {
  const auto weight = [](int64_t rows, int64_t cols, uint64_t seed) {
    Vec v = randn(size_t(rows * cols), seed, 0.05);
    for (size_t i = 0; i < v.size(); ++i) v[i] *= std::ldexp(1.0, int(i / 24 % 24) - 20);
    return to_f32(v);
  };
  Named t;
  t.emplace_back("model.layers.0.mixer.in_proj.weight", float_st(io::StDType::F32, {301, 384}, weight(301, 384, 11)));
  t.emplace_back("model.layers.0.norm.weight", float_st(io::StDType::F32, {384}, std::vector<float>(384, 1.0f)));
  t.emplace_back("model.layers.0.mixer.out_proj.weight", float_st(io::StDType::F16, {1001, 96}, weight(1001, 96, 12)));
  t.emplace_back("model.layers.0.mixer.x_proj.weight", float_st(io::StDType::F32, {9, 20}, weight(9, 20, 13)));
  t.emplace_back("model.layers.1.mixer.in_proj.weight", float_st(io::StDType::BF16, {517, 204}, weight(517, 204, 14)));
  t.emplace_back("model.layers.1.mixer.dt_proj.weight", float_st(io::StDType::F32, {7, 36}, weight(7, 36, 15)));
  return t;
}

// What is wrong with `out` as the int4 file of `in` in groups of g, against the float64 reference
// (support/reference.hpp): each quantized weight's scales (dtype and values), codes (and the zero
// padding of a row's last word), and, given the run's report, its error sums (1e-6 relative:
// they are summed in fp32 per group).
std::vector<std::string> int4_file_failures(const fs::path& in, const fs::path& out, int64_t g,
                                            const io::QuantizeReport* rep) {
  const auto a = io::SafetensorsSet::open(in), b = io::SafetensorsSet::open(out);
  std::vector<std::string> bad;
  ops::NF4Error want;
  for (const std::string& name : a.names()) {
    const std::vector<int64_t> shape = a.shape(name);
    const io::StDType dt = a.dtype(name);
    if (!io::should_quantize(name, dt, shape) || shape[1] % g != 0) continue;
    const int64_t rows = shape[0], cols = shape[1];
    const std::vector<float> wf = a.read_f32(name);
    const Vec w(wf.begin(), wf.end());
    const FloatType st = io::float_type_of(io::int4_scale_dtype(dt));
    const ref::Int4Ref q = ref::int4_quantize(w, rows, cols, g, io::float_type_of(dt), st);
    if (b.dtype(io::int4_scale_name(name)) != io::int4_scale_dtype(dt)) bad.push_back(name + ": the scales' dtype");
    const std::vector<float> scales = b.read_f32(io::int4_scale_name(name));
    size_t wrong_scales = 0, wrong_codes = 0, wrong_padding = 0;
    for (size_t i = 0; i < q.scales.size(); ++i) wrong_scales += double(scales.at(i)) != q.scales[i];
    const io::StTensor packed = b.read(io::int4_packed_name(name));
    std::vector<int32_t> words(packed.bytes.size() / 4);
    std::memcpy(words.data(), packed.bytes.data(), packed.bytes.size());
    const std::vector<int> codes = ref::int4_unpack(words, rows, cols);
    for (size_t i = 0; i < codes.size(); ++i) wrong_codes += codes[i] != q.codes[i];
    const int64_t per_row = (cols + 7) / 8, used = cols % 8;
    for (int64_t r = 0; used != 0 && r < rows; ++r)
      wrong_padding += (uint32_t(words[r * per_row + per_row - 1]) >> (4 * used)) != 0;
    if (wrong_scales + wrong_codes + wrong_padding > 0)
      bad.push_back(name + ": " + std::to_string(wrong_scales) + " scales, " + std::to_string(wrong_codes) + " codes, " +
                    std::to_string(wrong_padding) + " paddings differ from the reference");
    const Vec back = ref::int4_dequantize(q, rows, cols, g, st);
    for (size_t i = 0; i < w.size(); ++i) {
      const double d = std::fabs(w[i] - back[i]), m = std::fabs(w[i]);
      want.abs_sum += d, want.mag_sum += m, want.rel_sum += d / (m + 1e-8);
    }
    want.n += rows * cols;
  }
  if (rep) {
    const auto near = [](double x, double y) { return std::fabs(x - y) <= 1e-6 * std::fabs(y); };
    if (rep->error.n != want.n || !near(rep->error.abs_sum, want.abs_sum) || !near(rep->error.mag_sum, want.mag_sum) ||
        !near(rep->error.rel_sum, want.rel_sum))
      bad.push_back("the error sums differ from the reference's");
  }
  return bad;
}

}  // namespace

TEST(Int4Files, ReadsAndWritesWhatCompressedTensorsWrites) {
  // tests/fixtures/int4_ct.safetensors (scripts/check_compressed_tensors.py fixture): weights that
  // compressed-tensors 0.20.1 itself quantized, packed and decompressed, fp32 with fp16 scales,
  // fp16, bf16, and a width of 36 (4.5 words a row); with all-zero groups (scale eps), fp16
  // scales that are subnormal or round to 0, and a group of scale 1 holding halves (ties).
  const auto set = io::SafetensorsSet::open(fixture_file("int4_ct.safetensors"));
  for (const std::string c : {"f32", "f16", "bf16", "odd"}) {
    const std::string w = c + ".weight";
    ASSERT_TRUE(io::is_int4_weight(set, w)) << c;
    // Reading: our dequantization is theirs, bit for bit.
    const std::vector<float> theirs = set.read_f32(c + ".dequant");
    EXPECT_EQ(set.dtype(c + ".dequant"), set.dtype(io::int4_scale_name(w))) << c;
    EXPECT_EQ(io::load_int4_f32(set, w), theirs) << c;
    // Writing: our quantization of their dense weight gives their three tensors' bytes.
    const std::vector<int64_t> shape = set.shape(c + ".dense");
    const std::vector<float> dense = set.read_f32(c + ".dense");
    const quant::Int4Weight q = io::load_int4(set, w);
    const quant::Int4Weight ours = quant::quantize_int4(dense.data(), shape[0], shape[1], q.group_size,
                                                        io::float_type_of(set.dtype(c + ".dense")), q.scale_type);
    for (const auto& [name, st] : io::int4_to_st(w, ours)) {
      EXPECT_EQ(st.dtype, set.dtype(name)) << name;
      EXPECT_EQ(st.shape, set.shape(name)) << name;
      EXPECT_EQ(st.bytes, set.read(name).bytes) << name;
    }
  }
}

TEST(Int4Files, TheThreeTensorsOfAWeight) {
  TempDir dir;
  const std::vector<float> w = to_f32(randn(33 * 64, 7, 0.05));
  const quant::Int4Weight q = quant::quantize_int4(w.data(), 33, 64, 32, FloatType::f32, FloatType::f16);
  const Named parts = io::int4_to_st("m.w.weight", q);
  const auto entries = io::int4_entries("m.w.weight", {33, 64}, 32, io::StDType::F16);
  ASSERT_EQ(parts.size(), 3u);
  ASSERT_EQ(entries.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(parts[i].first, entries[i].name);
    EXPECT_EQ(parts[i].second.shape, entries[i].shape) << entries[i].name;
    EXPECT_EQ(parts[i].second.dtype, entries[i].dtype) << entries[i].name;
  }
  EXPECT_EQ(parts[0].first, "m.w.weight_packed");
  EXPECT_EQ(parts[0].second.dtype, io::StDType::I32);
  EXPECT_EQ(parts[0].second.shape, (std::vector<int64_t>{33, 8}));
  EXPECT_EQ(parts[1].first, "m.w.weight_scale");
  EXPECT_EQ(parts[1].second.dtype, io::StDType::F16);
  EXPECT_EQ(parts[1].second.shape, (std::vector<int64_t>{33, 2}));
  EXPECT_EQ(parts[2].first, "m.w.weight_shape");
  EXPECT_EQ(parts[2].second.dtype, io::StDType::I64);  // torch.tensor(weight.shape)
  int64_t dims[2];
  std::memcpy(dims, parts[2].second.bytes.data(), 16);
  EXPECT_EQ(dims[0], 33);
  EXPECT_EQ(dims[1], 64);

  io::write_safetensors(dir / "w.safetensors", parts);
  const auto set = io::SafetensorsSet::open(dir / "w.safetensors");
  EXPECT_TRUE(io::is_int4_weight(set, "m.w.weight"));
  EXPECT_TRUE(io::holds_weight(set, "m.w.weight"));
  EXPECT_FALSE(io::holds_weight(set, "m.v.weight"));
  EXPECT_EQ(io::int4_weight_names(set), std::vector<std::string>{"m.w.weight"});
  const quant::Int4Weight back = io::load_int4(set, "m.w.weight");
  EXPECT_EQ(back.rows, 33);
  EXPECT_EQ(back.cols, 64);
  EXPECT_EQ(back.group_size, 32);  // inferred from the shapes, as compressed-tensors does
  EXPECT_EQ(back.packed, q.packed);
  EXPECT_EQ(back.scales, q.scales);
  EXPECT_EQ(io::load_int4_f32(set, "m.w.weight"), quant::dequantize_int4(q));

  // weight_shape stored as I32 (compression_param_info's dtype) reads the same.
  Named i32 = parts;
  const int32_t d32[2] = {33, 64};
  i32[2].second = io::StTensor{io::StDType::I32, {2}, std::vector<uint8_t>(8)};
  std::memcpy(i32[2].second.bytes.data(), d32, 8);
  io::write_safetensors(dir / "i32.safetensors", i32);
  EXPECT_EQ(io::load_int4_f32(io::SafetensorsSet::open(dir / "i32.safetensors"), "m.w.weight"), quant::dequantize_int4(q));
}

TEST(Int4Files, BadFilesGiveOneLine) {
  TempDir dir;
  const std::vector<float> w = to_f32(randn(8 * 32, 8, 0.05));
  const Named good = io::int4_to_st("w.weight", quant::quantize_int4(w.data(), 8, 32, 16, FloatType::f32, FloatType::f16));
  int n = 0;
  const auto expect_bad = [&](const Named& parts, const std::string& fragment) {
    const fs::path f = dir / ("bad" + std::to_string(n++) + ".safetensors");
    io::write_safetensors(f, parts);
    const auto set = io::SafetensorsSet::open(f);
    const std::string message = error_of([&] { io::load_int4(set, "w.weight"); });
    EXPECT_TRUE(has(message, fragment)) << "expected '" << fragment << "', got: " << message;
    EXPECT_TRUE(has(message, f.string() + ": int4 weight 'w.weight'")) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  Named missing = good;
  missing.erase(missing.begin() + 1);
  expect_bad(missing, "is missing 'w.weight_scale'");
  Named no_shape = good;
  no_shape.pop_back();
  expect_bad(no_shape, "is missing 'w.weight_shape'");
  Named f32_packed = good;
  f32_packed[0].second.dtype = io::StDType::F32;  // same bytes, another dtype
  expect_bad(f32_packed, "has 'w.weight_packed' stored as F32, expected I32");
  Named short_packed = good;
  short_packed[0].second.shape = {8, 3};
  short_packed[0].second.bytes.resize(8 * 3 * 4);
  expect_bad(short_packed, "has weight_packed of shape [8, 3] but weight_shape [8, 32] needs [8, 4]");
  Named odd_scale = good;
  odd_scale[1].second = float_st(io::StDType::F16, {8, 3}, std::vector<float>(24, 0.01f));
  expect_bad(odd_scale, "has weight_scale of shape [8, 3], which does not split weight_shape [8, 32]");
  Named int_scale = good;
  int_scale[1].second.dtype = io::StDType::I32;
  int_scale[1].second.shape = {8, 1};
  expect_bad(int_scale, "has 'w.weight_scale' stored as I32, expected F16, BF16 or F32");
  Named wrong_shape = good;
  const int64_t d[2] = {8, 40};
  std::memcpy(wrong_shape[2].second.bytes.data(), d, 16);
  expect_bad(wrong_shape, "weight_shape [8, 40] needs [8, 5]");
  Named float_shape = good;
  float_shape[2].second = float_st(io::StDType::F32, {2}, {8.0f, 32.0f});
  expect_bad(float_shape, "has 'w.weight_shape' stored as F32, expected I64 or I32");
  Named zero_point = good;
  zero_point.emplace_back("w.weight_zero_point", io::StTensor{io::StDType::I32, {1, 2}, std::vector<uint8_t>(8)});
  expect_bad(zero_point, "asymmetric int4");
  Named g_idx = good;
  g_idx.emplace_back("w.weight_g_idx", io::StTensor{io::StDType::I32, {32}, std::vector<uint8_t>(128)});
  expect_bad(g_idx, "weight_g_idx (activation ordering)");
  Named nan_scale = good;
  nan_scale[1].second = float_st(io::StDType::F16, {8, 2}, std::vector<float>(16, NAN));
  expect_bad(nan_scale, "weight_scale: element 0 of 16 is NaN");
}

TEST(Int4Files, QuantizeFileQuantizesWhatTheGroupDivides) {
  TempDir dir;
  const Named tensors = small_model();
  io::write_safetensors(dir / "in.safetensors", tensors, {{"format", "pt"}});
  std::vector<std::string> seen;
  const auto rep = io::quantize_safetensors_file(
      test_ctx(), dir / "in.safetensors", dir / "out.safetensors",
      [&](const std::string& n, bool q) { seen.push_back(n + (q ? ":int4" : ":copy")); }, int4_options(16));
  EXPECT_EQ(rep.tensors_quantized, 3);
  EXPECT_EQ(rep.tensors_copied, 5);
  EXPECT_EQ(rep.params_quantized, 1280 + 512 + 768);
  EXPECT_EQ(rep.group_misfits, std::vector<std::string>{"backbone.layers.0.mixer.x_proj.weight"});
  EXPECT_EQ(rep.skipped_linear, (std::vector<std::string>{"backbone.embeddings.weight", "backbone.layers.0.mixer.x_proj.weight",
                                                          "lm_head.weight"}));
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(rep.bytes_out, fs::file_size(dir / "out.safetensors"));
  EXPECT_GT(rep.error.relative_l1(), 0.03);  // int4 on Gaussian weights in groups of 16: ~0.09
  EXPECT_LT(rep.error.relative_l1(), 0.2);
  // 4 bits per weight + a 16-bit scale per 16 + the 16 bytes of weight_shape per tensor.
  EXPECT_NEAR(rep.bits_per_param(), 4.0 + 1.0 + 8.0 * 48 / 2560, 1e-9);

  const auto in = io::SafetensorsSet::open(dir / "in.safetensors");
  const auto out = io::SafetensorsSet::open(dir / "out.safetensors");
  EXPECT_EQ(out.metadata(), in.metadata());
  std::vector<std::string> want_names;
  for (const auto& [n, t] : tensors) {
    if (!is_quantized_name(n)) {
      want_names.push_back(n);
      EXPECT_EQ(out.read(n).bytes, t.bytes) << n;
      EXPECT_EQ(out.dtype(n), t.dtype) << n;
      continue;
    }
    // The file's bytes are those of quantize_int4 with the weight's own type and its scale type.
    const FloatType wt = io::float_type_of(t.dtype);
    const FloatType st = io::float_type_of(io::int4_scale_dtype(t.dtype));
    const std::vector<float> w = in.read_f32(n);
    const Named want = io::int4_to_st(n, quant::quantize_int4(w.data(), t.shape[0], t.shape[1], 16, wt, st));
    for (const auto& [part, st_want] : want) {
      want_names.push_back(part);
      EXPECT_EQ(out.dtype(part), st_want.dtype) << part;
      EXPECT_EQ(out.shape(part), st_want.shape) << part;
      EXPECT_EQ(out.read(part).bytes, st_want.bytes) << part;
    }
    EXPECT_FALSE(out.contains(n)) << n;
  }
  EXPECT_EQ(out.names(), want_names);  // each weight's three parts where the weight was
  EXPECT_EQ(out.dtype("backbone.layers.0.mixer.out_proj.weight_scale"), io::StDType::F16);
  EXPECT_EQ(out.dtype("backbone.layers.0.mixer.in_proj.weight_scale"), io::StDType::F16);
  EXPECT_EQ(out.dtype("backbone.layers.0.mixer.dt_proj.weight_scale"), io::StDType::BF16);
  // A group size that is not positive is refused before anything is written.
  expect_error([&] { io::quantize_safetensors_file(test_ctx(), dir / "in.safetensors", dir / "o0.safetensors", {},
                                                   int4_options(0)); },
               "group size must be a positive whole number");
  EXPECT_FALSE(fs::exists(dir / "o0.safetensors"));
}

TEST(Int4Files, QuantizeFileIsTheReferenceOnAnyNumberOfThreads) {
  // The weights are split into blocks of rows shared by the threads; the file, byte for byte,
  // and the error figures do not depend on their number, and equal the float64 reference.
  TempDir dir;
  io::write_safetensors(dir / "in.safetensors", threaded_model(), {{"format", "pt"}});
  io::QuantizeOptions o = int4_options(kThreadedGroup);
  std::string first;
  io::QuantizeReport first_rep;
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    o.threads = threads;
    const fs::path out = dir / ("t" + std::to_string(threads) + ".safetensors");
    const auto rep = io::quantize_safetensors_file(test_ctx(), dir / "in.safetensors", out, {}, o);
    EXPECT_EQ(rep.tensors_quantized, 4) << threads;
    EXPECT_EQ(rep.group_misfits, std::vector<std::string>{"model.layers.0.mixer.x_proj.weight"}) << threads;
    const std::vector<std::string> failures = int4_file_failures(dir / "in.safetensors", out, kThreadedGroup, &rep);
    EXPECT_TRUE(failures.empty()) << threads << " threads: " << failures.front();
    if (threads == 1) {
      first = read_all(out), first_rep = rep;
      continue;
    }
    EXPECT_TRUE(read_all(out) == first) << threads << " threads wrote another file than 1 thread";
    EXPECT_EQ(rep.error.abs_sum, first_rep.error.abs_sum) << threads;
    EXPECT_EQ(rep.error.mag_sum, first_rep.error.mag_sum) << threads;
    EXPECT_EQ(rep.error.rel_sum, first_rep.error.rel_sum) << threads;
  }

  // The check can fail: a file whose groups start one column late (each row rotated left by
  // one before quantizing) is reported, by its codes and scales.
  Named broken;
  const auto in = io::SafetensorsSet::open(dir / "in.safetensors");
  for (const std::string& name : in.names()) {
    const std::vector<int64_t> shape = in.shape(name);
    if (!io::should_quantize(name, in.dtype(name), shape) || shape[1] % kThreadedGroup != 0) {
      broken.emplace_back(name, in.read(name));
      continue;
    }
    std::vector<float> w = in.read_f32(name);
    for (int64_t r = 0; r < shape[0]; ++r)
      std::rotate(w.begin() + r * shape[1], w.begin() + r * shape[1] + 1, w.begin() + (r + 1) * shape[1]);
    for (auto& part : io::int4_to_st(name, quant::quantize_int4(w.data(), shape[0], shape[1], kThreadedGroup,
                                                                io::float_type_of(in.dtype(name)),
                                                                io::float_type_of(io::int4_scale_dtype(in.dtype(name))))))
      broken.push_back(std::move(part));
  }
  io::write_safetensors(dir / "broken.safetensors", broken);
  const std::vector<std::string> caught = int4_file_failures(dir / "in.safetensors", dir / "broken.safetensors",
                                                             kThreadedGroup, nullptr);
  ASSERT_EQ(caught.size(), 4u);
  EXPECT_TRUE(has(caught[0], "model.layers.0.mixer.in_proj.weight: ")) << caught[0];
  EXPECT_FALSE(has(caught[0], " 0 codes")) << caught[0];
  EXPECT_FALSE(has(caught[0], ": 0 scales")) << caught[0];
}

TEST(Int4Files, QuantizeFileRefusesInfAndNaNInAnyBlock) {
  // A bad value in the last block of rows (another thread's) or the first: one line, no file.
  TempDir dir;
  for (const float bad : {NAN, INFINITY}) {
    Named t = threaded_model();
    float* w = reinterpret_cast<float*>(t[0].second.bytes.data());
    w[bad == INFINITY ? 5 : 300 * 384 + 100] = bad;
    const fs::path in = dir / "in.safetensors", out = dir / "out.safetensors";
    fs::remove(in);
    io::write_safetensors(in, t);
    io::QuantizeOptions o = int4_options(kThreadedGroup);
    o.threads = 3;
    const std::string message = error_of([&] { io::quantize_safetensors_file(test_ctx(), in, out, {}, o); });
    EXPECT_TRUE(has(message, "quantize: tensor 'model.layers.0.mixer.in_proj.weight' in " + in.string() +
                                 " holds Inf or NaN values; fix the checkpoint first.")) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(Int4Files, CheckpointFolderGetsLlmCompressorsConfig) {
  TempDir dir;
  fs::create_directories(dir / "ckpt");
  io::write_safetensors(dir / "ckpt" / "model.safetensors", small_model());
  std::ofstream(dir / "ckpt" / "config.json") << R"({"model_type": "mamba", "hidden_size": 32})";
  io::quantize_checkpoint_dir(test_ctx(), dir / "ckpt", dir / "q", {}, int4_options(16));
  const auto cfg = nlohmann::json::parse(read_all(dir / "q" / "config.json"));
  EXPECT_EQ(cfg["hidden_size"], 32);
  EXPECT_EQ(cfg["quantization_config"], nlohmann::json::parse(kLlmCompressorConfig)) << cfg["quantization_config"].dump(2);
  EXPECT_NO_THROW(io::check_quantization_config(dir / "q"));
  EXPECT_EQ(io::int4_weight_names(io::SafetensorsSet::open(dir / "q")).size(), 3u);

  // A tied output head (no lm_head tensor): "lm_head" is still ignored, since transformers' model
  // has an lm_head Linear that must not be taken for a quantized one.
  Named tied = small_model();
  tied.erase(tied.begin() + 6);
  fs::create_directories(dir / "tied");
  io::write_safetensors(dir / "tied" / "model.safetensors", tied);
  std::ofstream(dir / "tied" / "config.json") << R"({"model_type": "mamba", "tie_word_embeddings": true})";
  io::quantize_checkpoint_dir(test_ctx(), dir / "tied", dir / "qt", {}, int4_options(16));
  EXPECT_EQ(nlohmann::json::parse(read_all(dir / "qt" / "config.json"))["quantization_config"]["ignore"],
            (std::vector<std::string>{"backbone.embeddings", "backbone.layers.0.mixer.x_proj", "lm_head"}));
}

TEST(Int4Files, QuantizationConfigsWeDoNotReadGiveOneLine) {
  const nlohmann::json ours = {{"model_type", "mamba"},
                               {"quantization_config", io::int4_quantization_config(128, {"lm_head"})}};
  EXPECT_NO_THROW(io::check_quantization_config(ours, "c.json"));
  EXPECT_NO_THROW(io::check_quantization_config(nlohmann::json{{"model_type", "mamba"}}, "c.json"));
  EXPECT_NO_THROW(io::check_quantization_config(
      nlohmann::json{{"quantization_config", io::nf4_quantization_config({"lm_head"})}}, "c.json"));
  // A preset name for a group, as compressed-tensors' QuantizationConfig also accepts.
  EXPECT_NO_THROW(io::check_quantization_config(nlohmann::json::parse(R"({"quantization_config": {
      "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
      "config_groups": {"W4A16": ["Linear"]}}})"), "c.json"));
  const auto bad = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& fragment) {
    nlohmann::json j = ours;
    edit(j["quantization_config"]);
    const std::string message = error_of([&] { io::check_quantization_config(j, "c.json"); });
    EXPECT_TRUE(has(message, "c.json: quantization_config ")) << message;
    EXPECT_TRUE(has(message, fragment)) << "expected '" << fragment << "', got: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  const auto w = [](nlohmann::json& q) -> nlohmann::json& { return q["config_groups"]["group_0"]["weights"]; };
  bad([&](nlohmann::json& q) { w(q)["symmetric"] = false; }, "group 'group_0' has asymmetric weights");
  bad([&](nlohmann::json& q) { w(q)["num_bits"] = 8; }, "group 'group_0' has weights of num_bits 8");
  bad([&](nlohmann::json& q) { w(q)["type"] = "float"; }, "has weights of type \"float\"");
  bad([&](nlohmann::json& q) { w(q)["strategy"] = "channel"; }, "has weights of strategy \"channel\"");
  bad([&](nlohmann::json& q) { w(q)["group_size"] = 0; }, "has weights of group_size 0");
  bad([&](nlohmann::json& q) { w(q)["actorder"] = "group"; }, "actorder \"group\" (activation ordering");
  bad([&](nlohmann::json& q) { q["config_groups"]["group_0"]["input_activations"] = w(q); },
      "quantizes input_activations");
  bad([&](nlohmann::json& q) { q["quantization_status"] = "frozen"; }, "quantization_status \"frozen\"");
  bad([&](nlohmann::json& q) { q["format"] = q["config_groups"]["group_0"]["format"] = "int-quantized"; },
      "has format \"int-quantized\"");
  bad([&](nlohmann::json& q) { q["quant_method"] = "gptq"; }, "has quant_method \"gptq\"");
  bad([&](nlohmann::json& q) { q["kv_cache_scheme"] = {{"num_bits", 8}}; }, "KV cache");
  bad([&](nlohmann::json& q) { q["config_groups"] = nlohmann::json::object(); }, "has no config_groups");
  // Every line says what Magellano reads.
  bad([&](nlohmann::json& q) { w(q)["num_bits"] = 8; }, "Magellano reads compressed-tensors int4 weights only");
}

TEST(Int4Files, QuantizeCommandInt4) {
  MG_REQUIRE_CLI();
  TempDir dir;
  fs::create_directories(dir / "ckpt");
  io::write_safetensors(dir / "ckpt" / "model.safetensors", small_model());
  std::ofstream(dir / "ckpt" / "config.json") << R"({"model_type": "mamba", "hidden_size": 32})";
  std::ofstream(dir / "ckpt" / "tokenizer.json") << R"({"version": "1.0"})";
  auto r = run_cli({"quantize", "--in", (dir / "ckpt").string(), "--out", (dir / "q").string(), "--format", "int4",
                    "--group-size", "16"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "3 quantized to int4 (groups of 16), 5 copied")) << r.output;
  EXPECT_TRUE(has(r.output, "1 have an input width that 16 does not divide")) << r.output;
  EXPECT_TRUE(has(r.output, "backbone.layers.0.mixer.x_proj.weight")) << r.output;
  EXPECT_EQ(nlohmann::json::parse(read_all(dir / "q" / "config.json"))["quantization_config"],
            nlohmann::json::parse(kLlmCompressorConfig));
  EXPECT_EQ(read_all(dir / "q" / "tokenizer.json"), R"({"version": "1.0"})");
  // The default group size is 128, which divides none of these widths: nothing is quantized.
  r = run_cli({"quantize", "--in", (dir / "ckpt" / "model.safetensors").string(), "--out",
               (dir / "q128.safetensors").string(), "--format", "int4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["format"], "int4");
  EXPECT_EQ(j["group_size"], 128);
  EXPECT_EQ(j["tensors_quantized"], 0);
  EXPECT_EQ(j["group_misfits"].size(), 4u);
  r = run_cli({"quantize", "--in", (dir / "ckpt" / "model.safetensors").string(), "--out",
               (dir / "q4.safetensors").string(), "--format", "int4", "--group-size", "4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["tensors_quantized"], 4);  // every width here is a multiple of 4
  EXPECT_EQ(j["group_misfits"].size(), 0u);
  EXPECT_EQ(j["bytes_out"], fs::file_size(dir / "q4.safetensors"));

  // Bad options: one line, exit 2, nothing written.
  const std::string in = (dir / "ckpt").string();
  auto e = run_cli_split({"quantize", "--in", in, "--out", (dir / "b1").string(), "--format", "int4", "--group-size", "0"});
  EXPECT_TRUE(fails_with_one_line(e, 2, "--group-size must be in [1, 2147483647] (an integer), got '0'"));
  e = run_cli_split({"quantize", "--in", in, "--out", (dir / "b2").string(), "--format", "int4", "--group-size", "x"});
  EXPECT_TRUE(fails_with_one_line(e, 2, "--group-size must be in"));
  e = run_cli_split({"quantize", "--in", in, "--out", (dir / "b3").string(), "--format", "int8"});
  EXPECT_TRUE(fails_with_one_line(e, 2, "--format must be nf4 or int4, got 'int8'"));
  e = run_cli_split({"quantize", "--in", in, "--out", (dir / "b4").string(), "--group-size", "64"});
  EXPECT_TRUE(fails_with_one_line(e, 2, "--group-size applies to --format int4"));
  for (const char* b : {"b1", "b2", "b3", "b4"}) EXPECT_FALSE(fs::exists(dir / b)) << b;
}
