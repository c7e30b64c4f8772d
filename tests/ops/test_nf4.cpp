// NF4 kernels (cl/nf4.cl) against the host reference (which tests/unit/test_nf4_reference.cpp
// checks against bitsandbytes): quantize and dequantize must agree bit for bit, at odd sizes, on
// poisoned (NaN-filled) fresh buffers. nf4_linear against the float64 reference ref::linear with
// the weight the host reference dequantizes (tolerances stated below); perf size: a (768, 768)
// NF4 weight applied to 8 x 512 rows.
#include <bit>
#include <cmath>
#include <cstring>

#include "op_case.hpp"
#include "reference.hpp"
#include "magellano/io/st_dtype.hpp"
#include "magellano/ops/nf4.hpp"
#include "magellano/ops/nf4_linear.hpp"
#include "magellano/quant/nf4_reference.hpp"

using namespace mgtest;
using namespace magellano;
namespace nf4ref = magellano::quant::reference;

namespace {

std::vector<float> weights(int64_t n, uint64_t seed, double scale) {
  std::vector<float> x = to_f32(randn(n, seed, scale));
  // Exact zeros, a zero block and values on the code grid make the rounding rules matter.
  for (int64_t i = 0; i < n; i += 13) x[i] = 0.0f;
  if (n >= 192)
    for (int64_t i = 128; i < 192; ++i) x[i] = 0.0f;
  return x;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
        << what << "[" << i << "]: device " << got[i] << " vs host " << want[i];
}

void expect_same_bytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(int(got[i]), int(want[i])) << what << "[" << i << "]";
}

void check_against_reference(const Shape& shape, const std::vector<float>& x, const std::string& what) {
  Tensor t = Tensor::from_host(test_ctx(), shape, x);
  const ops::NF4Weight q = ops::quantize_nf4(t);
  const nf4ref::HostNF4 h = nf4ref::quantize_nf4(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(q.shape, shape);
  EXPECT_EQ(std::bit_cast<uint32_t>(q.offset), std::bit_cast<uint32_t>(h.offset)) << what;
  expect_same_bytes(q.packed.to_host_u8(), h.packed, what + " packed");
  expect_same_bytes(q.absmax_q.to_host_u8(), h.absmax_q, what + " absmax_q");
  expect_same_bits(q.nested_absmax.to_host(), h.nested_absmax, what + " nested_absmax");
  const std::vector<float> want = nf4ref::dequantize_nf4(h);
  expect_same_bits(ops::dequantize_nf4(q).to_host(), want, what + " dequantize f32");
  // f16 output: the fp32 value rounded to nearest even.
  Tensor half = Tensor::empty(test_ctx(), shape, DType::f16);
  ops::dequantize_nf4_into(q, half);
  std::vector<float> want16(want.size());
  for (size_t i = 0; i < want.size(); ++i) want16[i] = io::f16_to_f32(io::f32_to_f16(want[i]));
  expect_same_bits(half.to_host(), want16, what + " dequantize f16");
}

}  // namespace

TEST(NF4Kernels, QuantizeAndDequantizeEqualTheHostReference) {
  // Sizes: tiny, odd, one block +-1, several nested blocks (256 * 64 = 16384 per nested block).
  for (int64_t n : {1, 2, 3, 63, 64, 65, 127, 201, 4113, 16384 * 2 + 5 * 64 + 7}) {
    check_against_reference(Shape{n}, weights(n, 100 + n, 0.05), "n=" + std::to_string(n));
  }
  check_against_reference(Shape{37, 70}, weights(37 * 70, 7, 1.0), "(37, 70)");
}

TEST(NF4Kernels, EdgeCases) {
  // All zeros (full and partial blocks), a constant (every absmax equals the offset, so the
  // nested scale is 0), values exactly on NF4 midpoints, huge and tiny magnitudes.
  check_against_reference(Shape{100}, std::vector<float>(100, 0.0f), "zeros");
  check_against_reference(Shape{2, 64}, std::vector<float>(128, 0.5f), "constant");
  const auto& code = ops::nf4_code();
  std::vector<float> mids;
  for (int rep = 0; rep < 3; ++rep)
    for (int k = 0; k < 15; ++k) {
      const float m = (code[k] + code[k + 1]) / 2.0f;
      mids.push_back(m);
      mids.push_back(std::nextafter(m, INFINITY));
      mids.push_back(std::nextafter(m, -INFINITY));
    }
  mids.push_back(1.0f);
  mids.push_back(-1.0f);
  for (size_t i = 0; i < mids.size(); ++i) mids[i] *= (i / 64 == 1) ? 0.75f : 1.0f;
  check_against_reference(Shape{static_cast<int64_t>(mids.size())}, mids, "midpoints");
  std::vector<float> wide = weights(3000, 9, 1.0);
  for (size_t i = 0; i < wide.size(); ++i) wide[i] *= std::ldexp(1.0f, static_cast<int>(i / 64 % 60) - 30);
  check_against_reference(Shape{3000}, wide, "magnitudes 2^-30..2^29");
}

TEST(NF4Kernels, StorageIsAbout4127BitsPerParameter) {
  const int64_t rows = 256, cols = 1024, n = rows * cols;
  const ops::NF4Weight q = ops::quantize_nf4(Tensor::from_host(test_ctx(), Shape{rows, cols}, weights(n, 3, 0.02)));
  EXPECT_EQ(q.packed.nbytes(), uint64_t(n / 2));
  EXPECT_EQ(q.absmax_q.nbytes(), uint64_t(n / 64));
  EXPECT_EQ(q.nested_absmax.nbytes(), uint64_t(4 * n / 64 / 256));
  const double data_bits = 8.0 * (q.nbytes() - 16 * 4 - 256 * 4) / n;
  EXPECT_NEAR(data_bits, 4.127, 1e-3);  // 4 + 8/64 + 32/16384 = 4.12695
  EXPECT_NEAR(q.bits_per_param(), 4.12695 + 8.0 * 1088 / n, 1e-4);
  EXPECT_EQ(q.packed.storage()->category(), MemCategory::parameters);
}

TEST(NF4Kernels, ErrorStatisticsMatchTheHost) {
  // Sums over blocks of 64 in fp32 on the device, fp64 across blocks: relative 1e-5 covers the
  // fp32 rounding of 64-term sums (about 64 * 2^-24).
  for (int64_t n : {4113, 64 * 50}) {
    const std::vector<float> x = weights(n, 77 + n, 0.3);
    const ops::NF4Weight q = ops::quantize_nf4(Tensor::from_host(test_ctx(), Shape{n}, x));
    const std::vector<float> y = nf4ref::dequantize_nf4(nf4ref::quantize_nf4(x.data(), n));
    double e = 0, m = 0, r = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = std::fabs(double(x[i]) - y[i]);
      e += d, m += std::fabs(x[i]), r += d / (std::fabs(double(x[i])) + 1e-8);
    }
    const ops::NF4Error got = ops::nf4_error(Tensor::from_host(test_ctx(), Shape{n}, x), q);
    EXPECT_EQ(got.n, n);
    EXPECT_NEAR(got.abs_sum, e, 1e-5 * e);
    EXPECT_NEAR(got.mag_sum, m, 1e-5 * m);
    EXPECT_NEAR(got.rel_sum, r, 1e-5 * r);
    EXPECT_NEAR(got.mean_abs(), e / n, 1e-5 * e / n);
  }
}

TEST(NF4Kernels, BadInputIsAClearError) {
  Tensor i32 = Tensor::from_host_i32(test_ctx(), Shape{4}, {1, 2, 3, 4});
  EXPECT_THROW(ops::quantize_nf4(i32), magellano::Error);
  EXPECT_THROW(ops::quantize_nf4(Tensor()), magellano::Error);
  const ops::NF4Weight q = ops::quantize_nf4(upload(Shape{8, 16}, randn(128, 1)));
  EXPECT_THROW(ops::dequantize_nf4_into(q, Tensor::empty(test_ctx(), Shape{127})), magellano::Error);
  EXPECT_THROW(ops::nf4_linear(upload(Shape{3, 15}, randn(45, 2)), q), magellano::Error);
  EXPECT_THROW(ops::nf4_from_host(test_ctx(), Shape{8, 16}, std::vector<uint8_t>(63), std::vector<uint8_t>(2),
                                    {1.0f}, 0.0f, std::vector<float>(16), std::vector<float>(256), "w"),
               magellano::Error);
}

namespace {

// A (out, in) weight from weights(out * in, seed, 0.1), quantized on the device, and the host
// reference's dequantized values (exact fp32 values) the float64 reference multiplies by.
struct Nf4Weight {
  ops::NF4Weight q;
  Vec dequantized;
};
Nf4Weight nf4_weight(int64_t out, int64_t in, uint64_t seed) {
  const std::vector<float> wf = weights(out * in, seed, 0.1);
  return {ops::quantize_nf4(Tensor::from_host(test_ctx(), Shape{out, in}, wf)),
          to_f64(nf4ref::dequantize_nf4(nf4ref::quantize_nf4(wf.data(), out * in)))};
}

// x (..., in) · W (out, in, NF4)ᵀ: 2 R in out FLOPs forward and for dx. Bytes: x and y (4 R
// (in + out)), the packed weight (4.127 bits a parameter) and, on the dequantize + GEMM path,
// its fp32 copy written and read (8 bytes a parameter; the fused path skips it); the backward
// (dx only: the base is frozen) likewise.
Cost nf4_linear_cost(double rows, double in, double out) {
  const double bytes = 4 * rows * (in + out) + in * out * (4.127 / 8 + 8);
  return {bytes, 2 * rows * in * out, bytes, 2 * rows * in * out};
}

// x of shape xs; W (out, in) from `seed`; path: automatic or forced fused.
CaseSpec nf4_linear_case(const Shape& xs, int64_t out, uint64_t w_seed, uint64_t x_seed, ops::NF4Path path,
                         const Tolerance& tol = {}) {
  const int64_t in = xs.last();
  return {"nf4_linear " + dims(xs) + " W " + std::to_string(out) + "x" + std::to_string(in) +
              (path == ops::NF4Path::fused ? " fused" : ""),
          [=] {
            const Nf4Weight w = nf4_weight(out, in, w_seed);
            const int64_t rows = xs.numel() / in;
            OpCase c;
            c.inputs = {{xs, randn(xs.numel(), x_seed)}};
            c.device = [q = w.q, path](const std::vector<Tensor>& t) { return ops::nf4_linear(t[0], q, path); };
            c.ref = [=, wd = w.dequantized](const std::vector<Vec>& x) { return ref::linear(x[0], rows, in, wd, out); };
            c.ref_grad = [=, wd = w.dequantized](const std::vector<Vec>& x, const Vec& dy) {
              auto g = zeros_like(x);
              Vec dw(wd.size(), 0.0);  // the frozen base's gradient is not an output
              ref::linear_bwd(x[0], rows, in, wd, out, dy, g[0], dw);
              return g;
            };
            c.tol = tol;
            c.sizes = {{"rows", rows}, {"in", in}, {"out", out}, {"path", path == ops::NF4Path::fused ? "fused" : "auto"}};
            c.cost = nf4_linear_cost(double(rows), double(in), double(out));
            return c;
          }};
}

// W (37, 70): 70 is not a multiple of 64, so blocks straddle rows. Tolerances: one fp32 dot
// product of length 70 (forward) or 37 (backward): harness defaults 1e-5 / 1e-4 relative.
// The fused kernel (rows <= 8; chosen automatically for 1 row) with K = 70 and K = 200: rows of
// W start inside 64-blocks. Forward tolerance: an fp32 sum of K products in a different order
// than the reference, relative 1e-5 with an absolute 1e-5 for sums near 0; the backward is the
// dequantize + GEMM path.
std::vector<CaseSpec> nf4_linear_tests() {
  std::vector<CaseSpec> v = {nf4_linear_case(Shape{3, 5, 70}, 37, 5, 11, ops::NF4Path::automatic)};
  for (int64_t in : {70, 200})
    for (const Shape& xs : {Shape{1, in}, Shape{3, in}, Shape{2, 4, in}})
      v.push_back(nf4_linear_case(xs, 29, 21 + in, 30 + xs.rows(), ops::NF4Path::fused,
                                  Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-5}));
  return v;
}

const RegisterOp reg{{"nf4_linear", nf4_linear_tests(),
                      nf4_linear_case(Shape{8 * 512, 768}, 768, 3, 4, ops::NF4Path::automatic)}};

}  // namespace

TEST(NF4Linear, FusedAndDequantizeGemmPathsAgree) {
  // Both paths agree to fp32 summation-order differences; the fused path takes at most 8 rows.
  for (int64_t in : {70, 200}) {
    const ops::NF4Weight q = nf4_weight(29, in, 21 + in).q;
    Tensor x = upload(Shape{3, in}, randn(3 * in, 3));
    expect_close(ops::nf4_linear(x, q, ops::NF4Path::fused).to_host(),
                 to_f64(ops::nf4_linear(x, q, ops::NF4Path::dequant_gemm).to_host()), 1e-5, 1e-5,
                 "fused vs dequant + GEMM");
    EXPECT_THROW(ops::nf4_linear(upload(Shape{9, in}, randn(9 * in, 4)), q, ops::NF4Path::fused),
                 magellano::Error);
  }
}

TEST(NF4Linear, ScratchIsReusedAndTrackedAsScratch) {
  Context& ctx = test_ctx();
  ops::release_nf4_scratch(ctx);
  const ops::NF4Weight big = ops::quantize_nf4(upload(Shape{64, 96}, randn(64 * 96, 1)));
  const ops::NF4Weight small = ops::quantize_nf4(upload(Shape{16, 96}, randn(16 * 96, 2)));
  const uint64_t before = ctx.memory().current(MemCategory::scratch);
  Tensor x = upload(Shape{4, 96}, randn(4 * 96, 3));
  ops::nf4_linear(x, big, ops::NF4Path::dequant_gemm);
  EXPECT_EQ(ops::nf4_scratch_bytes(ctx), uint64_t(64 * 96 * 4));
  EXPECT_EQ(ctx.memory().current(MemCategory::scratch), before + 64 * 96 * 4);
  ops::nf4_linear(x, small, ops::NF4Path::dequant_gemm);  // fits: no new buffer
  EXPECT_EQ(ops::nf4_scratch_bytes(ctx), uint64_t(64 * 96 * 4));
  ops::release_nf4_scratch(ctx);
  EXPECT_EQ(ops::nf4_scratch_bytes(ctx), 0u);
  EXPECT_EQ(ctx.memory().current(MemCategory::scratch), before);
}
