// Group-wise int4 weights kept packed on the device, and the linear layer over them: the device
// side of compressed-tensors' "pack-quantized" W4A16 format (file layout and rules:
// io/int4_safetensors.hpp; host arithmetic, the exact reference: quant/int4_group.hpp).
//
// A weight W (out, in), groups of G consecutive columns of a row (G divides in; a weight whose
// width G does not divide stays dense, as the file format leaves it: see Int4Weight::fits):
//   packed  i32 (out, ceil(in / 8)): column c of a row in word c / 8, bits 4 (c % 8) .. +4, as
//           code + 8 (the first column in the lowest nibble; a row's last word padded with 0)
//   scales  f16 (out, in / G)
//   W'[r][c] = round_f16(code * scale)   (compressed-tensors' dequantization in the scale's
//           dtype; code * scale is exact in fp32, then rounded once to fp16, nearest even)
// Memory: in/2 + 2 in/G bytes a row plus the word padding: 0.5156 bytes a weight at G = 128.
//
// Quantize (on the device, equal bit for bit to quant::quantize_int4 with an fp32 weight and
// fp16 scales): scale = round_f16(min(absmax / 7.5, 65504)) (the fp32 quotient correctly
// rounded), 2^-10 where that is 0; code = rint(clamp(w / scale, -8, 7)) (w / scale correctly
// rounded in fp32, halves to even).
//
// The linear layer, autograd for the input only (the base is frozen):
//   int4_linear(x, W) = x · W'ᵀ     x: (..., in) f32 -> (..., out) f32
//   backward: dx = dy · W'          (W' dequantized into the per-context scratch of
//                                    ops::nf4_scratch, then the GEMM; added into x's gradient
//                                    when it already holds one)
// Forward paths (results differ only in fp32 summation order):
//   dequant_gemm  W' dequantized into that fp32 scratch, then ops::gemm;
//   fused         one kernel reads the packed words and scales and multiplies (cl/int4.cl,
//                 int4_linear_small): 0.52 bytes a weight read instead of 4 written and 4 read
//                 again; x with at most kInt4FusedMaxRows rows.
// automatic: fused for at most kInt4FusedAutoRows rows (decoding), else dequant_gemm.
// Kernel mapping (ops/mapping.hpp): cpu, a work-item per output walks its row sixteen weights a
// step (two words of one group, looked up in the group's table of its 16 values: int4_weights16 in
// cl/common.cl); gpu, a work-group of 32 lanes per output strides over the row's words
// (coalesced) and sums in a fixed tree. `bench int4`, 8192 x 2048, one row, PoCL on the 2-core
// EPYC: fused 1.1-1.2 ms (2.3 ms converting each weight to fp16 and back), the dense fp32 product
// 14 ms (benchmarks/README.md, "int4 on the device").
// Decoding reads int4 weights through ops::decode_gemv (its int4 variant, groups of a multiple of
// 32), which also fuses the norm, bias and residual.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "magellano/autograd/tape.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

constexpr int64_t kInt4GroupSize = 128;  // the W4A16 preset's group (and Magellano's default)

struct Int4Weight {
  Shape shape;             // (out, in)
  int64_t group_size = 0;  // G, divides in
  Tensor packed;           // i32 (out * words_per_row())
  Tensor scales;           // f16 (out * groups_per_row())

  bool defined() const { return packed.defined(); }
  int64_t out_features() const { return shape[0]; }
  int64_t in_features() const { return shape[1]; }
  int64_t numel() const { return shape.numel(); }
  int64_t words_per_row() const { return (in_features() + 7) / 8; }
  int64_t groups_per_row() const { return in_features() / group_size; }
  uint64_t nbytes() const;        // packed + scales
  double bits_per_param() const;  // nbytes() * 8 / numel()
  Context& ctx() const { return packed.ctx(); }
  // Whether a (out, in) weight can be stored with group size g (compressed-tensors' rule).
  static bool fits(int64_t in, int64_t g) { return in > 0 && g > 0 && in % g == 0; }
};

// Quantizes w (out, in) f32 on its device with group size g (throws when g does not divide in).
Int4Weight quantize_int4(const Tensor& w, int64_t group_size = kInt4GroupSize,
                         MemCategory category = MemCategory::parameters);

// Builds a device weight from host data (a file's words and fp16-exact scales, as floats),
// checking the sizes against (out, in) and g; throws magellano::Error naming `what` otherwise.
Int4Weight int4_from_host(Context& ctx, int64_t out, int64_t in, int64_t group_size,
                          const std::vector<int32_t>& packed, const std::vector<float>& scales,
                          const std::string& what, MemCategory category = MemCategory::parameters);

// W' into out (f32, numel == w.numel(); shape not checked beyond that).
void dequantize_int4_into(const Int4Weight& w, const Tensor& out);
// W' (out, in) f32, freshly allocated.
Tensor dequantize_int4(const Int4Weight& w, MemCategory category = MemCategory::activations);

enum class Int4Path { automatic, dequant_gemm, fused };
constexpr int64_t kInt4FusedMaxRows = 8;
constexpr int64_t kInt4FusedAutoRows = 1;

Tensor int4_linear(const Tensor& x, const Int4Weight& w, Int4Path path = Int4Path::automatic);

}  // namespace magellano::ops
