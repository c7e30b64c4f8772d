// NF4 with double quantization, laid out and rounded as bitsandbytes does (its 4-bit "nf4"
// quant type with compress_statistics=True, blocksize 64), on the device.
//
// Quantize a tensor w of n elements, flattened row-major:
//   blocks of 64 (the last one shorter when 64 does not divide n); absmax[b] = max |w| over
//   block b (fp32); code[i] = the NF4 value nearest to w[i] * (1 / absmax[b]) (fp32 arithmetic,
//   a tie between two codes takes the lower one); packed[i / 2] holds code[i] in its high nibble
//   when i is even, in its low nibble when i is odd (an odd n leaves the last low nibble 0).
// Double quantization of the absmax values (n_blocks of them):
//   offset = mean(absmax); absmax - offset in blocks of 256: nested_absmax[c] = max |.| over
//   block c; absmax_q[b] = the value of bitsandbytes' signed dynamic map that its CPU
//   quantize_blockwise picks for (absmax[b] - offset) * (1 / nested_absmax[c]): the nearest one,
//   decided through a 65,536-entry table (exact rules: quant/nf4_reference.hpp, the host
//   reference these launchers equal bit for bit; kernels: cl/nf4.cl).
// Dequantize:
//   absmax'[b] = dynamic_map[absmax_q[b]] * nested_absmax[b / 256] + offset
//   w'[i]      = nf4_code[code[i]] * absmax'[i / 64]
// Storage: n/2 + n/64 + 4 n/(64*256) bytes, about 4.127 bits per parameter (+ 1 KiB of maps).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "magellano/tensor/tensor.hpp"

namespace magellano::ops {

constexpr int kNF4BlockSize = 64;      // elements per absmax
constexpr int kNestedBlockSize = 256;  // absmax values per nested scale

// The code books (src/ops/nf4_maps.cpp), shared with the host reference.
// The 16 NF4 values, index = 4-bit code (bitsandbytes' table, from -1 to 1).
const std::array<float, 16>& nf4_code();
// bitsandbytes' create_dynamic_map(signed=True): 256 sorted fp32 values in [-1, 1].
const std::array<float, 256>& dynamic_map_signed();
// The 65,536-entry table of bitsandbytes' CPU quantize_blockwise for a sorted 256-value map:
// lut[i] = the number of fp32 midpoints 0.5 * (map[k] + map[k+1]) below -1 + (2 * i) / 65535.
std::vector<uint8_t> blockwise_lut(const float* map);
// The offset of the double quantization: the mean of the absmax values (the fp64 sum in order,
// / n, rounded to fp32).
float absmax_mean(const float* absmax, int64_t n);

// An NF4 weight on the device. All tensors live in one context; shape is the original one
// (out, in) for a linear weight (any shape of up to 4 dims works for (de)quantization).
struct NF4Weight {
  Shape shape;                    // the dequantized tensor's shape
  int blocksize = kNF4BlockSize;  // only 64 is supported
  int nested_blocksize = kNestedBlockSize;
  Tensor packed;                  // u8 (ceil(n / 2)): two codes per byte, even index high
  Tensor absmax_q;                // u8 (n_blocks): nested 8-bit codes of absmax - offset
  Tensor nested_absmax;           // f32 (ceil(n_blocks / 256)): one scale per 256 absmax
  Tensor quant_map;               // f32 (16): nf4_code()
  Tensor nested_quant_map;        // f32 (256): dynamic_map_signed()
  float offset = 0.0f;            // mean of the absmax values

  bool defined() const { return packed.defined(); }
  int64_t numel() const { return shape.numel(); }
  int64_t blocks() const;         // ceil(n / 64)
  int64_t nested_blocks() const;  // ceil(blocks() / 256)
  int64_t out_features() const { return shape[0]; }  // rows of a 2-D weight
  int64_t in_features() const { return shape[-1]; }
  uint64_t nbytes() const;        // packed + absmax_q + nested_absmax + both maps
  double bits_per_param() const;  // nbytes() * 8 / numel()
  Context& ctx() const { return packed.ctx(); }
};

// Quantizes w (f32, any shape with numel > 0) on its device; the results are tracked as
// `category` (parameters: a frozen base weight).
NF4Weight quantize_nf4(const Tensor& w, MemCategory category = MemCategory::parameters);

// The dequantized tensor (f32, w.shape), freshly allocated.
Tensor dequantize_nf4(const NF4Weight& w, MemCategory category = MemCategory::activations);
// Dequantizes into out (f32 or f16, numel == w.numel(); its shape is not checked beyond that).
void dequantize_nf4_into(const NF4Weight& w, const Tensor& out);

// The fp32 absmax values after double-quant dequantization (n_blocks), on the device.
Tensor dequantize_absmax(const NF4Weight& w);

// How far dequant(q) is from w (f32, q's shape): sums over all elements, fp32 per block of 64
// on the device, fp64 across blocks on the host.
struct NF4Error {
  int64_t n = 0;
  double abs_sum = 0;  // sum |w - w'|
  double mag_sum = 0;  // sum |w|
  double rel_sum = 0;  // sum |w - w'| / (|w| + 1e-8)  (bitsandbytes' tests' relative error)
  double mean_abs() const { return n ? abs_sum / n : 0.0; }
  double relative_l1() const { return mag_sum > 0 ? abs_sum / mag_sum : 0.0; }
  double mean_rel() const { return n ? rel_sum / n : 0.0; }
  NF4Error& operator+=(const NF4Error& o);
};
NF4Error nf4_error(const Tensor& w, const NF4Weight& q);

// Builds an NF4Weight from host data (e.g. read from a file) after checking that the sizes
// agree with `shape`; throws magellano::Error naming `what` otherwise.
NF4Weight nf4_from_host(Context& ctx, const Shape& shape, const std::vector<uint8_t>& packed,
                        const std::vector<uint8_t>& absmax_q,
                        const std::vector<float>& nested_absmax, float offset,
                        const std::vector<float>& quant_map,
                        const std::vector<float>& nested_quant_map, const std::string& what,
                        MemCategory category = MemCategory::parameters);

}  // namespace magellano::ops
