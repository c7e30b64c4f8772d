// Safetensors: round trips of every dtype and odd shapes, byte-exact agreement with files built
// by hand from the format's spec, half-precision conversions, every validation error, and the
// device helpers (to_st / load_into) on the test device.
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "harness.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"

using namespace magellano;
using namespace magellano::io;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test, removed afterwards.
class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("magellano-st-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

StTensor make(StDType dtype, std::vector<int64_t> shape, uint32_t seed) {
  const size_t n = static_cast<size_t>(st_numel(shape)) * st_dtype_size(dtype);
  return {dtype, std::move(shape), random_bytes(n, seed)};
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file laid out by hand: length prefix, header padded with spaces to 8, data.
std::string file_bytes(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

void write_raw(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_raw(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

template <class T>
std::string as_bytes(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

// Opening (and, when `name` is given, reading `name` from) the file throws magellano::Error whose
// message contains the fragment and the file's name.
void expect_open_error(const fs::path& p, const std::string& fragment, const std::string& name = "") {
  try {
    auto r = SafetensorsReader::open(p);
    if (!name.empty()) r.read(name);
    FAIL() << "no error; expected one containing: " << fragment;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_NE(msg.find(p.filename().string()), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    EXPECT_LT(msg.size(), 1000u) << "a huge value echoed whole: " << msg.substr(0, 300);
  }
}

}  // namespace

TEST(SafetensorsDType, NamesAndSizes) {
  const std::pair<StDType, std::pair<const char*, size_t>> all[] = {
      {StDType::F32, {"F32", 4}}, {StDType::F16, {"F16", 2}}, {StDType::BF16, {"BF16", 2}},
      {StDType::U8, {"U8", 1}},   {StDType::I32, {"I32", 4}}, {StDType::I64, {"I64", 8}}};
  for (const auto& [t, ns] : all) {
    EXPECT_STREQ(st_dtype_name(t), ns.first);
    EXPECT_EQ(st_dtype_size(t), ns.second);
    EXPECT_EQ(st_dtype_from_name(ns.first), t);
  }
  EXPECT_EQ(st_dtype_from_name("F64"), std::nullopt);
  EXPECT_EQ(st_dtype_from_name("f32"), std::nullopt);  // the format's names are upper case
}

TEST_F(Safetensors, RoundTripEveryDtypeAndOddShapes) {
  std::vector<std::pair<std::string, StTensor>> ts = {
      {"f32.odd", make(StDType::F32, {3, 5, 7}, 1)},
      {"f16.vec", make(StDType::F16, {13}, 2)},
      {"bf16.mat", make(StDType::BF16, {7, 3}, 3)},
      {"u8.five_d", make(StDType::U8, {2, 1, 3, 1, 5}, 4)},
      {"i32.scalar", make(StDType::I32, {}, 5)},  // 0-d: one element
      {"i64.col", make(StDType::I64, {3, 1}, 6)},
      {"empty", make(StDType::F32, {0}, 7)},
      {"empty.middle", make(StDType::BF16, {4, 0, 2}, 8)},
      {"a_last_in_order", make(StDType::U8, {1}, 9)},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "42"}, {"note", ""}};
  const fs::path p = dir_ / "model.safetensors";
  write_safetensors(p, ts, meta);

  const auto r = SafetensorsReader::open(p);
  std::vector<std::string> names;
  for (const auto& [n, t] : ts) names.push_back(n);
  EXPECT_EQ(r.names(), names);  // data order = the order given
  EXPECT_EQ(r.metadata(), meta);
  for (const auto& [n, t] : ts) {
    SCOPED_TRACE(n);
    EXPECT_TRUE(r.contains(n));
    EXPECT_EQ(r.dtype(n), t.dtype);
    EXPECT_EQ(r.shape(n), t.shape);
    const StTensor got = r.read(n);
    EXPECT_EQ(got.dtype, t.dtype);
    EXPECT_EQ(got.shape, t.shape);
    EXPECT_EQ(got.bytes, t.bytes);
  }
  EXPECT_FALSE(r.contains("absent"));
  EXPECT_EQ(r.read("i32.scalar").bytes.size(), 4u);
  EXPECT_TRUE(r.read("empty.middle").bytes.empty());

  // The data section starts 8-byte aligned.
  const std::string raw = read_raw(p);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(raw.substr(8 + n - 1, 1).find_first_not_of(" }"), std::string::npos);

  // No tensors, no metadata: still a valid file.
  write_safetensors(dir_ / "none.safetensors", {});
  const auto e = SafetensorsReader::open(dir_ / "none.safetensors");
  EXPECT_TRUE(e.names().empty());
  EXPECT_TRUE(e.metadata().empty());
  EXPECT_EQ(read_raw(dir_ / "none.safetensors"), le64(8) + "{}      ");
}

TEST_F(Safetensors, ByteExactAgainstHandBuiltFile) {
  // One F32 tensor "a" of shape [2] = {1, 2}, built from the spec.
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 54u);  // padded with 2 spaces to 56
  const std::string want = le64(56) + header + "  " + as_bytes(std::vector<float>{1.0f, 2.0f});
  const fs::path p = dir_ / "a.safetensors";
  StTensor a{StDType::F32, {2}, {}};
  const std::string data = as_bytes(std::vector<float>{1.0f, 2.0f});
  a.bytes.assign(data.begin(), data.end());
  write_safetensors(p, {{"a", a}});
  EXPECT_EQ(read_raw(p), want);

  // With metadata, which comes first (as the Python library writes it).
  const std::string h2 =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  write_safetensors(p, {{"a", a}}, {{"format", "pt"}});
  EXPECT_EQ(read_raw(p), file_bytes(h2, data));

  // Other writers: keys in any order, whitespace, header order unlike data order, and a header
  // whose padding is not ours (unpadded).
  const std::string h3 = R"({ "y" : {"data_offsets":[4, 6], "shape":[], "dtype":"BF16"},
    "x": {"shape": [1], "dtype": "I32", "data_offsets": [0, 4]},
    "__metadata__": {"k": "v"} })";
  const std::string d3 = as_bytes(std::vector<int32_t>{-7}) + std::string("\x40\x40", 2);  // 3.0
  write_raw(p, file_bytes(h3, d3, /*pad=*/false));
  const auto r = SafetensorsReader::open(p);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(r.metadata().at("k"), "v");
  EXPECT_EQ(r.shape("y"), std::vector<int64_t>{});
  EXPECT_EQ(r.read_f32("y"), std::vector<float>{3.0f});
  const StTensor x = r.read("x");
  int32_t xv;
  std::memcpy(&xv, x.bytes.data(), 4);
  EXPECT_EQ(xv, -7);
}

TEST_F(Safetensors, HalfAndBfloat16ConvertToF32) {
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3555, 0x8000};
  const std::vector<float> f16_want = {1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24),
                                       std::numeric_limits<float>::infinity(), 0.333251953125f,
                                       -0.0f};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x4049, 0x0000, 0xFF80, 0x0001};
  const std::vector<float> bf16_want = {1.0f, -3.0f, 3.140625f, 0.0f,
                                        -std::numeric_limits<float>::infinity(),
                                        std::ldexp(1.0f, -133)};
  auto st = [](StDType t, const std::vector<uint16_t>& v) {
    const std::string b = as_bytes(v);
    return StTensor{t, {static_cast<int64_t>(v.size())}, {b.begin(), b.end()}};
  };
  const std::string f32b = as_bytes(std::vector<float>{0.1f, -5.5f});
  const fs::path p = dir_ / "half.safetensors";
  write_safetensors(p, {{"h", st(StDType::F16, f16)},
                        {"b", st(StDType::BF16, bf16)},
                        {"f", StTensor{StDType::F32, {2}, {f32b.begin(), f32b.end()}}},
                        {"i", make(StDType::I32, {2}, 1)}});
  const auto r = SafetensorsReader::open(p);
  const auto h = r.read_f32("h");
  ASSERT_EQ(h.size(), f16_want.size());
  for (size_t i = 0; i < h.size(); ++i) {
    EXPECT_EQ(h[i], f16_want[i]) << i;
    EXPECT_EQ(std::signbit(h[i]), std::signbit(f16_want[i])) << i;
  }
  EXPECT_EQ(r.read_f32("b"), bf16_want);
  EXPECT_EQ(r.read_f32("f"), (std::vector<float>{0.1f, -5.5f}));
  try {
    r.read_f32("i");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'i' is I32"), std::string::npos) << e.what();
  }
  // The other direction rounds to nearest, ties to even.
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie -> even (down)
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f16_to_f32(f32_to_f16(0.1f)), 0.0999755859375f);
}

TEST_F(Safetensors, ValidationErrorsNameTheFileAndTheProblem) {
  const std::string f8 = as_bytes(std::vector<float>{1, 2});
  const auto hdr = [](const std::string& body) { return "{" + body + "}"; };
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"empty", "", "too short (0 bytes"},
      {"short", std::string("\x08\x00\x00", 3), "too short (3 bytes"},
      {"len_beyond", le64(1000) + "{}", "header length 1000 runs beyond the end of the file (10 bytes)"},
      {"huge_len", le64(~0ull) + "{}      ", "runs beyond the end"},
      {"garbage", file_bytes("not json at all", ""), "header is not valid JSON: parse error at line 1"},
      {"truncated_json", file_bytes(R"({"a":{"dtype":"F32")", ""), "header is not valid JSON"},
      {"array", file_bytes("[1,2]", ""), "header is a JSON array, not an object"},
      {"dtype", file_bytes(hdr(R"("a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]})"), f8),
       "tensor 'a' has unknown dtype \"F64\""},
      {"no_shape", file_bytes(hdr(R"("a":{"dtype":"F32","data_offsets":[0,8]})"), f8),
       "tensor 'a' needs an object with"},
      {"neg_shape", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), f8),
       "tensor 'a' has shape [-2]"},
      {"size", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), f8),
       "tensor 'a': F32 shape [3] needs 12 bytes but data_offsets [0,8] hold 8"},
      {"size_bf16", file_bytes(hdr(R"("a":{"dtype":"BF16","shape":[2,1],"data_offsets":[0,8]})"), f8),
       "BF16 shape [2, 1] needs 4 bytes"},
      {"out_of_range", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), f8),
       "tensor 'a' has data_offsets [0,16] beyond the data section (8 bytes)"},
      {"reversed", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), f8),
       "expected [begin, end] with begin <= end"},
      {"overlap", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})"),
                             f8 + "1234"),
       "tensor 'b' overlaps tensor 'a'"},
      {"gap", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]})"),
                         f8 + "1234"),
       "bytes [4, 8) of the data section belong to no tensor"},
      {"trailing", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), f8),
       "the tensors cover 4 of the data section's 8 bytes"},
      {"meta", file_bytes(hdr(R"("__metadata__":{"step":42})"), ""),
       "metadata entry \"step\" is a number, not a string"},
      // The reference implementation keeps one of two entries of a name (a HashMap), leaving the
      // other's bytes unowned; here any key given twice is refused by name.
      {"duplicate_name", file_bytes(hdr(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), f8),
       "header has the key \"a\" twice in one object"},
      {"duplicate_field", file_bytes(hdr(R"("a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]})"), f8),
       "header has the key \"dtype\" twice"},
      {"deep_dtype", file_bytes(hdr(R"("a":{"dtype":)" + std::string(100000, '[') + std::string(100000, ']') +
                                    R"(,"shape":[2],"data_offsets":[0,8]})"), f8),
       "header nests arrays and objects more than 64 deep"},
      {"long_name", file_bytes(hdr("\"" + std::string(1000000, 'n') + R"(":{"dtype":"F64","shape":[1],"data_offsets":[0,8]})"), f8),
       "tensor 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn... (1000000 bytes)' has unknown dtype"},
  };
  for (const auto& [name, bytes, fragment] : cases) {
    SCOPED_TRACE(name);
    const fs::path p = dir_ / (name + ".safetensors");
    write_raw(p, bytes);
    expect_open_error(p, fragment);
  }
  expect_open_error(dir_ / "missing.safetensors", "is missing or cannot be opened: No such file");
  fs::create_directories(dir_ / "folder.safetensors");
  expect_open_error(dir_ / "folder.safetensors", "is a folder, not a file");

  // A requested name that is absent lists what is there.
  const fs::path p = dir_ / "names.safetensors";
  write_safetensors(p, {{"alpha", make(StDType::U8, {1}, 1)}, {"beta", make(StDType::U8, {2}, 2)}});
  expect_open_error(p, "has no tensor 'gamma' (it holds 2 tensors: alpha, beta)", "gamma");
  const auto r = SafetensorsReader::open(p);
  EXPECT_THROW(r.shape("gamma"), Error);
  EXPECT_THROW(r.dtype("gamma"), Error);
}

TEST_F(Safetensors, WriterRejectsBadInputAndLeavesNoFile) {
  const fs::path p = dir_ / "bad.safetensors";
  const auto expect_write_error = [&](const std::vector<std::pair<std::string, StTensor>>& ts,
                                      const std::string& fragment) {
    try {
      write_safetensors(p, ts);
      FAIL() << "no error; expected: " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(p));
  };
  StTensor wrong = make(StDType::F32, {3}, 1);
  wrong.bytes.pop_back();
  expect_write_error({{"w", wrong}}, "tensor 'w' (F32, shape [3]) needs 12 bytes but has 11");
  expect_write_error({{"d", make(StDType::U8, {1}, 1)}, {"d", make(StDType::U8, {1}, 2)}},
                     "tensor 'd' appears twice");
  expect_write_error({{"__metadata__", make(StDType::U8, {1}, 1)}}, "may not be named");
  expect_write_error({{"n", StTensor{StDType::U8, {-1}, {}}}}, "negative dimension");
  for (const auto& e : fs::directory_iterator(dir_)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST_F(Safetensors, ReaderKeepsItsFileWhenThePathIsReplaced) {
  const fs::path p = dir_ / "m.safetensors";
  const StTensor first = make(StDType::F32, {4}, 1);
  write_safetensors(p, {{"w", first}});
  const auto r = SafetensorsReader::open(p);
  write_safetensors(p, {{"w", make(StDType::F32, {4}, 2)}});  // renamed over p
  EXPECT_EQ(r.read("w").bytes, first.bytes);
  const auto copy = r;  // copies share the open file
  EXPECT_EQ(copy.read("w").bytes, first.bytes);
}

TEST_F(Safetensors, DeviceRoundTrip) {
  auto& ctx = mgtest::test_ctx();
  const auto vals = mgtest::to_f32(mgtest::randn(3 * 5, 11));
  Tensor f = Tensor::from_host(ctx, Shape{3, 5}, vals);
  Tensor h = Tensor::from_host(ctx, Shape{2, 3}, {0.5f, -1.25f, 3.0f, 1e-3f, -7.0f, 2048.0f},
                               DType::f16);
  Tensor i = Tensor::from_host_i32(ctx, Shape{4}, {-1, 0, 7, 1 << 30});
  Tensor u = Tensor::from_host_u8(ctx, Shape{1, 3}, {0, 128, 255});
  Tensor s = Tensor::from_host(ctx, Shape{}, {42.5f});
  Tensor row = f.narrow_rows(1, 2);  // a view at a non-zero offset

  const StTensor fs_ = to_st(f);
  EXPECT_EQ(fs_.dtype, StDType::F32);
  EXPECT_EQ(fs_.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(to_st(h).dtype, StDType::F16);
  EXPECT_EQ(to_st(i).dtype, StDType::I32);
  EXPECT_EQ(to_st(u).dtype, StDType::U8);
  EXPECT_EQ(to_st(s).shape, std::vector<int64_t>{});
  const fs::path p = dir_ / "dev.safetensors";
  write_safetensors(p, {{"f", fs_}, {"h", to_st(h)}, {"i", to_st(i)}, {"u", to_st(u)},
                        {"s", to_st(s)}, {"row", to_st(row)}});
  const auto r = SafetensorsReader::open(p);

  Tensor f2 = Tensor::zeros(ctx, Shape{3, 5});
  load_into(r, "f", f2);
  EXPECT_EQ(f2.to_host(), vals);
  Tensor h2 = Tensor::zeros(ctx, Shape{2, 3}, DType::f16);
  load_into(r, "h", h2);
  EXPECT_EQ(h2.to_host(), h.to_host());
  Tensor i2 = Tensor::zeros(ctx, Shape{4}, DType::i32);
  load_into(r, "i", i2);
  EXPECT_EQ(i2.to_host_i32(), i.to_host_i32());
  Tensor u2 = Tensor::zeros(ctx, Shape{1, 3}, DType::u8);
  load_into(r, "u", u2);
  EXPECT_EQ(u2.to_host_u8(), (std::vector<uint8_t>{0, 128, 255}));
  Tensor s2 = Tensor::zeros(ctx, Shape{});
  load_into(r, "s", s2);
  EXPECT_EQ(s2.item(), 42.5f);
  Tensor row2 = Tensor::zeros(ctx, Shape{1, 5});
  load_into(r, "row", row2);
  EXPECT_EQ(row2.to_host(), std::vector<float>(vals.begin() + 5, vals.begin() + 10));
  // Loading into a view writes only the view's elements.
  Tensor big = Tensor::zeros(ctx, Shape{3, 5});
  load_into(r, "row", big.narrow_rows(2, 3));
  const auto bv = big.to_host();
  EXPECT_EQ(std::vector<float>(bv.begin(), bv.begin() + 10), std::vector<float>(10, 0.0f));
  EXPECT_EQ(std::vector<float>(bv.begin() + 10, bv.end()),
            std::vector<float>(vals.begin() + 5, vals.begin() + 10));

  // Conversions: F16 -> f32, F32 -> f16, BF16 -> f32.
  Tensor hf = Tensor::zeros(ctx, Shape{2, 3});
  load_into(r, "h", hf);
  EXPECT_EQ(hf.to_host(), h.to_host());
  Tensor fh = Tensor::zeros(ctx, Shape{3, 5}, DType::f16);
  load_into(r, "f", fh);
  const auto fhv = fh.to_host();
  for (size_t k = 0; k < vals.size(); ++k) EXPECT_EQ(fhv[k], f16_to_f32(f32_to_f16(vals[k])));
  const std::vector<uint16_t> bfv = {0x3F80, 0xC040, 0x4049};
  const std::string bb = as_bytes(bfv);
  write_safetensors(dir_ / "bf.safetensors", {{"b", StTensor{StDType::BF16, {3}, {bb.begin(), bb.end()}}}});
  Tensor bf = Tensor::zeros(ctx, Shape{3});
  load_into(SafetensorsReader::open(dir_ / "bf.safetensors"), "b", bf);
  EXPECT_EQ(bf.to_host(), (std::vector<float>{1.0f, -3.0f, 3.140625f}));

  // Errors name the tensor and both shapes / dtypes.
  const auto expect_load_error = [&](const std::string& name, const Tensor& dst,
                                     const std::string& fragment) {
    try {
      load_into(r, name, dst);
      FAIL() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_load_error("f", Tensor::zeros(ctx, Shape{5, 3}),
                    "loading 'f' from " + p.string() + ": stored shape [3, 5] differs from the "
                    "model's [5, 3]");
  expect_load_error("f", Tensor::zeros(ctx, Shape{15}), "stored shape [3, 5] differs");
  expect_load_error("i", Tensor::zeros(ctx, Shape{4}), "stored dtype I32 cannot be loaded into a f32");
  expect_load_error("f", Tensor::zeros(ctx, Shape{3, 5}, DType::i32), "stored dtype F32");
  expect_load_error("nope", f2, "has no tensor 'nope'");
}
