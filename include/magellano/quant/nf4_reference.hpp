// NF4 double quantization on the host, in plain fp32 C++: the reference that the device kernels
// (cl/nf4.cl) must equal bit for bit, written to follow bitsandbytes 0.50's CPU path exactly
// (its default-backend quantize_4bit and its C++ quantize_blockwise for the nested step).
//
// Rules (see ops/nf4.hpp for the layout):
//   absmax[b]   = max |x| over block b (the last block shorter when 64 does not divide n); a last
//                 block that is all zeros stores 1e-38f (bitsandbytes clamps it), a full one 0.
//   scaled      = x * (1 / max(absmax, 1e-38f)) in full blocks, x / max(absmax, 1e-38f) in the
//                 last partial block (both correctly rounded fp32, as torch computes them).
//   code        = number of fp32 midpoints (c[k] + c[k+1]) / 2 strictly below scaled (a value
//                 on a midpoint takes the lower code; an all-zero block gives code 7, i.e. 0.0).
//   packing     = even index in the high nibble; an odd n pads the last low nibble with code 7.
//   offset      = mean of absmax: the fp64 sum in order, / n, rounded to fp32 (bitsandbytes uses
//                 torch.mean, whose fp32 summation order may differ from this in the last bit).
//   nested      = per 256 values v = absmax - offset: s = max |v| (a block with s == 0 stores
//                 code 0); x = clamp(v * (1 / s), -1, 1); t = ((x + 1) * 0.5) * 65535 + 0.5 (each
//                 step rounded to fp32); code = lut[trunc(t)], where lut[i] counts the fp32
//                 midpoints 0.5 * (map[k] + map[k+1]) below -1 + (2 * i) / 65535. This is
//                 bitsandbytes 0.50's CPU quantize_blockwise (a 65,536-entry table, not an exact
//                 nearest search: near a midpoint it may pick the farther neighbour, and 0 maps
//                 to a small positive value); we reproduce it bit for bit.
//   dequantize  = absmax' = map[q] * s + offset (two fp32 roundings); x' = code[c] * absmax'.
#pragma once
#include <cstdint>
#include <vector>

namespace magellano::quant::reference {

struct HostNF4 {
  int64_t n = 0;
  std::vector<uint8_t> packed;        // ceil(n / 2)
  std::vector<float> absmax;          // ceil(n / 64): fp32, before double quantization
  float offset = 0.0f;
  std::vector<uint8_t> absmax_q;      // ceil(n / 64)
  std::vector<float> nested_absmax;   // ceil(ceil(n / 64) / 256)
};

// The 4-bit code of one scaled value (bucketize against the fp32 midpoints).
uint8_t nf4_code_of(float scaled);

// First level only: packed codes and fp32 absmax.
void quantize_nf4_blocks(const float* x, int64_t n, uint8_t* packed, float* absmax);

// The offset of the double quantization (ops::absmax_mean) and the 65,536-entry table of
// bitsandbytes' CPU quantize_blockwise (ops::blockwise_lut) are shared with the device launchers.
// The table index of a value already scaled by 1 / s: trunc(((clamp(x) + 1) * 0.5) * 65535 + 0.5).
uint16_t blockwise_lut_index(float x);

// bitsandbytes' quantize_blockwise on the CPU (fp32) with a sorted 256-value map: q (n codes),
// scale (ceil(n / blocksize) absmax values).
void quantize_blockwise(const float* v, int64_t n, int blocksize, const float* map, uint8_t* q,
                        float* scale);

// The whole pipeline; `offset_override` (when non-null) replaces the computed mean, so tests can
// check the nested step against bitsandbytes' own offset.
HostNF4 quantize_nf4(const float* x, int64_t n, const float* offset_override = nullptr);

// absmax' (n_blocks) from the nested codes.
std::vector<float> dequantize_absmax(const std::vector<uint8_t>& absmax_q,
                                     const std::vector<float>& nested_absmax, float offset);
// x' (n) from packed codes and absmax'.
std::vector<float> dequantize_nf4(const std::vector<uint8_t>& packed,
                                  const std::vector<float>& absmax_dq, int64_t n);
std::vector<float> dequantize_nf4(const HostNF4& q);

}  // namespace magellano::quant::reference
