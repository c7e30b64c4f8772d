// GgufWriter and the ggml encodings against tests/support/gguf_reader (an independent parser of
// docs/gguf.md) and float64 references:
//   - the header bytes, every metadata type, arrays, tensor infos, offsets and padding (alignment
//     32 and 64), data read back bit for bit;
//   - F16 bits equal round-to-nearest-even of the float64 value (exact);
//   - Q8_0 blocks equal ggml's rule computed in float64: the scale bits exactly, each q exactly
//     except where x/d lies within 1e-4 of a half-integer (fp32 vs float64 may round either way
//     there; the test counts such cases and they do not occur in its data); a quantizer that
//     truncates instead of rounding is caught;
//   - bad keys, names, dims and byte counts throw; a failed write leaves no file behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "gguf_reader.hpp"
#include "magellano/io/ggml_quants.hpp"
#include "magellano/io/gguf_writer.hpp"
#include "magellano/runtime/error.hpp"
#include "temp_dir.hpp"

using namespace magellano;
using namespace mgtest;
namespace fs = std::filesystem;

namespace {

std::vector<float> random_values(size_t n, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = float(nd(rng));
  return v;
}

size_t files_in(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST(GgufWriter, HeaderMetadataTensorsAndAlignmentReadBack) {
  for (uint32_t alignment : {32u, 64u}) {
    TempDir d;
    io::GgufWriter w(alignment);
    w.add_string("general.architecture", "mamba");
    w.add_u32("mamba.block_count", 7);
    w.add_i32("test.i32", -5);
    w.add_u64("test.u64", 1ull << 40);
    w.add_f32("test.f32", 1e-5f);
    w.add_bool("test.bool", true);
    w.add_array("test.ints", std::vector<int32_t>{0, 4, 0, -2});
    w.add_array("test.floats", std::vector<float>{0.5f, -1.25f});
    w.add_array("test.strings", std::vector<std::string>{"Ġthe", "", "<|endoftext|>"});
    const auto a = random_values(3 * 5, 1, 1.0);   // F32 {5, 3}
    const auto b = random_values(7, 2, 1.0);       // F16 {7}
    const auto c = random_values(64 * 3, 3, 0.1);  // Q8_0 {64, 3}
    w.add_tensor("a.weight", {5, 3}, io::GgmlType::f32);
    w.add_tensor("blk.0.b", {7}, io::GgmlType::f16);
    w.add_tensor("c.weight", {64, 3}, io::GgmlType::q8_0);
    const fs::path path = d / "x.gguf";
    w.write(path, [&](size_t i, std::vector<uint8_t>& out) {
      const auto& v = i == 0 ? a : i == 1 ? b : c;
      io::ggml_encode(i == 0 ? io::GgmlType::f32 : i == 1 ? io::GgmlType::f16 : io::GgmlType::q8_0, v.data(),
                      int64_t(v.size()), out);
    });

    // The first 24 bytes as the specification spells them.
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> head(24);
    in.read(reinterpret_cast<char*>(head.data()), 24);
    const std::vector<uint8_t> want = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_TRUE(std::equal(want.begin(), want.end(), head.begin()));
    uint64_t n_kv;
    std::memcpy(&n_kv, head.data() + 16, 8);
    EXPECT_EQ(n_kv, alignment == 32 ? 9u : 10u);  // general.alignment only when not the default

    const GgufFile f = read_gguf(path);
    EXPECT_EQ(f.alignment, alignment);
    EXPECT_EQ(f.data_start % alignment, 0u);
    EXPECT_EQ(f.kv.at("general.architecture").str, "mamba");
    EXPECT_EQ(f.kv.at("general.architecture").type, 8u);
    EXPECT_EQ(f.kv.at("mamba.block_count").type, 4u);
    EXPECT_EQ(f.kv.at("mamba.block_count").uinteger, 7u);
    EXPECT_EQ(f.kv.at("test.i32").type, 5u);
    EXPECT_EQ(f.kv.at("test.i32").integer, -5);
    EXPECT_EQ(f.kv.at("test.u64").type, 10u);
    EXPECT_EQ(f.kv.at("test.u64").uinteger, 1ull << 40);
    EXPECT_EQ(f.kv.at("test.f32").type, 6u);
    EXPECT_EQ(float(f.kv.at("test.f32").number), 1e-5f);
    EXPECT_EQ(f.kv.at("test.bool").type, 7u);
    EXPECT_TRUE(f.kv.at("test.bool").boolean);
    EXPECT_EQ(f.kv.at("test.ints").elem_type, 5u);
    EXPECT_EQ(f.kv.at("test.ints").ints, (std::vector<int64_t>{0, 4, 0, -2}));
    EXPECT_EQ(f.kv.at("test.floats").elem_type, 6u);
    EXPECT_EQ(f.kv.at("test.floats").numbers, (std::vector<double>{0.5, -1.25}));
    EXPECT_EQ(f.kv.at("test.strings").strings, (std::vector<std::string>{"Ġthe", "", "<|endoftext|>"}));
    EXPECT_EQ(f.key_order.front(), alignment == 32 ? "general.architecture" : "general.alignment");

    ASSERT_EQ(f.tensors.size(), 3u);
    EXPECT_EQ(f.tensors[0].name, "a.weight");
    EXPECT_EQ(f.tensors[0].ne, (std::vector<int64_t>{5, 3}));
    EXPECT_EQ(f.tensors[0].type, 0u);
    EXPECT_EQ(f.tensors[1].type, 1u);
    EXPECT_EQ(f.tensors[2].type, 8u);
    EXPECT_EQ(f.tensors[0].offset, 0u);
    // Offsets: each tensor's bytes padded up to the alignment.
    auto up = [&](uint64_t n) { return (n + alignment - 1) / alignment * alignment; };
    EXPECT_EQ(f.tensors[1].offset, up(15 * 4));
    EXPECT_EQ(f.tensors[2].offset, f.tensors[1].offset + up(7 * 2));
    EXPECT_EQ(fs::file_size(path), f.data_start + f.tensors[2].offset + up(6 * 34));
    const auto va = gguf_values(f.tensors[0]);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(va[i], double(a[i]));
    for (size_t i = 0; i < b.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, f.tensors[1].bytes.data() + 2 * i, 2);
      EXPECT_EQ(h, ref_half_bits(b[i])) << i;
    }
  }
}

TEST(GgufWriter, F16RoundsToNearestEvenIncludingTiesSubnormalsAndOverflow) {
  // Ties between two halves (1 + 2^-11 lies halfway between 1 and 1 + 2^-10), subnormals, the
  // largest half, values that overflow to infinity, and random values of many magnitudes.
  std::vector<float> v = {1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11), -0.0f, 0.0f,
                          std::ldexp(1.0f, -24), std::ldexp(1.5f, -24), std::ldexp(1.0f, -25) * 1.0001f,
                          65504.0f, 65519.0f, 65520.0f, 1e9f, -1e9f, 6.1e-5f};
  for (int e = -30; e <= 17; ++e)
    for (float x : random_values(20, 100 + e, 1.0)) v.push_back(std::ldexp(x, e));
  std::vector<uint8_t> out;
  io::ggml_encode(io::GgmlType::f16, v.data(), int64_t(v.size()), out);
  ASSERT_EQ(out.size(), 2 * v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, out.data() + 2 * i, 2);
    EXPECT_EQ(h, ref_half_bits(v[i])) << "value " << v[i];
  }
}

namespace {

// Compares encoded Q8_0 bytes with the float64 reference; returns the mismatches (near-ties apart)
// and counts the near-ties.
int64_t q8_0_mismatches(const std::vector<float>& x, const std::vector<uint8_t>& bytes, int64_t& near_ties) {
  int64_t bad = 0;
  for (size_t blk = 0; blk < x.size() / 32; ++blk) {
    uint16_t scale;
    int8_t q[32];
    bool tie[32];
    ref_q8_0_block(x.data() + 32 * blk, scale, q, tie);
    uint16_t got_scale;
    std::memcpy(&got_scale, bytes.data() + 34 * blk, 2);
    if (got_scale != scale) ++bad;
    for (int j = 0; j < 32; ++j) {
      const int8_t got = int8_t(bytes[34 * blk + 2 + j]);
      if (tie[j]) {
        ++near_ties;
        if (std::abs(got - q[j]) > 1) ++bad;
      } else if (got != q[j]) {
        ++bad;
      }
    }
  }
  return bad;
}

}  // namespace

TEST(GgufWriter, Q8_0MatchesGgmlsRuleInFloat64) {
  // Blocks of very different scales, an all-zero block, a block of exact halves (x / d = k + 0.5
  // exactly: amax 127 makes d = 1, and roundf takes 2.5 to 3 and -2.5 to -3), one huge value.
  std::vector<float> x;
  for (double scale : {1e-6, 1e-3, 0.02, 1.0, 300.0}) {
    auto r = random_values(32 * 16, uint64_t(scale * 1e6) + 7, scale);
    x.insert(x.end(), r.begin(), r.end());
  }
  x.insert(x.end(), 32, 0.0f);
  std::vector<float> halves(32, 2.5f);
  halves[0] = 127.0f, halves[1] = -2.5f, halves[2] = 0.5f, halves[3] = -0.5f, halves[4] = 126.5f;
  x.insert(x.end(), halves.begin(), halves.end());
  std::vector<float> spike(32, 1e-3f);
  spike[17] = -1e4f;
  x.insert(x.end(), spike.begin(), spike.end());

  std::vector<uint8_t> bytes;
  io::ggml_encode(io::GgmlType::q8_0, x.data(), int64_t(x.size()), bytes);
  ASSERT_EQ(bytes.size(), x.size() / 32 * 34);
  int64_t ties = 0;
  EXPECT_EQ(q8_0_mismatches(x, bytes, ties), 0);
  // The exact halves are exact in fp32 too (d = 1, id = 1): they must round away from zero.
  const size_t hb = x.size() / 32 - 2;
  EXPECT_EQ(int8_t(bytes[34 * hb + 2 + 5]), 3);   // 2.5
  EXPECT_EQ(int8_t(bytes[34 * hb + 2 + 1]), -3);  // -2.5
  EXPECT_EQ(int8_t(bytes[34 * hb + 2 + 2]), 1);   // 0.5
  EXPECT_EQ(int8_t(bytes[34 * hb + 2 + 3]), -1);  // -0.5
  EXPECT_EQ(int8_t(bytes[34 * hb + 2 + 0]), 127);
  EXPECT_GE(ties, 31);  // the exact halves; random values land within 1e-4 of a half rarely
  EXPECT_LE(ties, 31 + 20);
  EXPECT_EQ(int8_t(bytes[34 * hb + 2 + 4]), 127);  // 126.5 → 127 (away from zero)
  // The zero block: scale 0, all q 0.
  const size_t zb = hb - 1;
  for (int j = 0; j < 34; ++j) EXPECT_EQ(bytes[34 * zb + j], 0) << j;

  // A broken quantizer (truncating instead of rounding) is caught by the same comparison.
  std::vector<uint8_t> broken = bytes;
  for (size_t blk = 0; blk < x.size() / 32; ++blk) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 34 * blk, 2);
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * blk + j]));
    const float d = amax / 127, id = d ? 1 / d : 0;
    for (int j = 0; j < 32; ++j) broken[34 * blk + 2 + j] = uint8_t(int8_t(x[32 * blk + j] * id));
  }
  int64_t ties2 = 0;
  EXPECT_GT(q8_0_mismatches(x, broken, ties2), 100);
  EXPECT_THROW(io::ggml_encode(io::GgmlType::q8_0, x.data(), 33, bytes), Error);
}

TEST(GgufWriter, BadInputThrowsAndAFailedWriteLeavesNothing) {
  io::GgufWriter w;
  w.add_u32("a.b", 1);
  EXPECT_THROW(w.add_u32("a.b", 2), Error);             // repeated key
  EXPECT_THROW(w.add_u32("A.b", 2), Error);             // upper case
  EXPECT_THROW(w.add_string("a b", "x"), Error);        // space
  EXPECT_THROW(io::GgufWriter(48), Error);              // alignment not a power of two
  w.add_tensor("t.weight", {32, 2}, io::GgmlType::q8_0);
  EXPECT_THROW(w.add_tensor("t.weight", {4}, io::GgmlType::f32), Error);         // repeated
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), {4}, io::GgmlType::f32), Error);  // name too long
  EXPECT_THROW(w.add_tensor("u", {1, 1, 1, 1, 1}, io::GgmlType::f32), Error);     // 5 dims
  EXPECT_THROW(w.add_tensor("u", {0}, io::GgmlType::f32), Error);                 // empty
  EXPECT_THROW(w.add_tensor("u", {33, 2}, io::GgmlType::q8_0), Error);            // rows not blocks
  TempDir d;
  // A producer giving the wrong byte count, and one that fails midway: no file, no temporary.
  EXPECT_THROW(w.write(d / "x.gguf", [](size_t, std::vector<uint8_t>& b) { b.resize(67); }), Error);
  w.add_tensor("v", {8}, io::GgmlType::f32);
  EXPECT_THROW(w.write(d / "x.gguf",
                       [](size_t i, std::vector<uint8_t>& b) {
                         if (i == 1) throw Error("device lost");
                         b.resize(68);
                       }),
               Error);
  EXPECT_EQ(files_in(d.path()), 0u);
  // A folder that does not exist: one error, nothing written.
  EXPECT_THROW(w.write(d / "missing" / "x.gguf", [](size_t, std::vector<uint8_t>& b) { b.resize(68); }), Error);
  EXPECT_EQ(files_in(d.path()), 0u);
}
