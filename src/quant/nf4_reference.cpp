#include "magellano/quant/nf4_reference.hpp"

#include <algorithm>
#include <cmath>

#include "magellano/ops/nf4.hpp"

namespace magellano::quant::reference {

using ops::absmax_mean;
using ops::blockwise_lut;
using ops::dynamic_map_signed;
using ops::kNestedBlockSize;
using ops::nf4_code;

namespace {

constexpr int kBlock = ops::kNF4BlockSize;
// torch's clamp(min=1e-38) on fp32: the double 1e-38 rounded to fp32 (a subnormal).
const float kTiny = static_cast<float>(1e-38);

const std::array<float, 15>& nf4_midpoints() {
  static const std::array<float, 15> mids = [] {
    std::array<float, 15> m{};
    const auto& c = nf4_code();
    for (int k = 0; k < 15; ++k) m[k] = (c[k] + c[k + 1]) / 2.0f;
    return m;
  }();
  return mids;
}

}  // namespace

uint8_t nf4_code_of(float scaled) {
  const auto& m = nf4_midpoints();
  uint8_t code = 0;
  for (float mid : m) code += mid < scaled ? 1 : 0;
  return code;
}

void quantize_nf4_blocks(const float* x, int64_t n, uint8_t* packed, float* absmax) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::fill(packed, packed + (n + 1) / 2, uint8_t{0});
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, end = std::min(n, begin + kBlock);
    const bool partial = end - begin < kBlock;
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(x[i]));
    const float den = std::max(m, kTiny);
    absmax[b] = partial ? den : m;
    const float inv = 1.0f / den;
    for (int64_t i = begin; i < end; ++i) {
      const float scaled = partial ? x[i] / den : x[i] * inv;
      const uint8_t c = nf4_code_of(scaled);
      packed[i / 2] |= static_cast<uint8_t>(i % 2 == 0 ? c << 4 : c);
    }
  }
  if (n % 2) packed[n / 2] |= nf4_code_of(0.0f);  // bitsandbytes pads with a scaled 0
}

uint16_t blockwise_lut_index(float x) {
  x = std::clamp(x, -1.0f, 1.0f);
  float t = x + 1.0f;
  t = t * 0.5f;
  t = t * 65535.0f;
  t = t + 0.5f;
  return static_cast<uint16_t>(t);
}

void quantize_blockwise(const float* v, int64_t n, int blocksize, const float* map, uint8_t* q,
                        float* scale) {
  const std::vector<uint8_t> lut = blockwise_lut(map);
  for (int64_t begin = 0, b = 0; begin < n; begin += blocksize, ++b) {
    const int64_t end = std::min(n, begin + blocksize);
    float s = 0.0f;
    for (int64_t i = begin; i < end; ++i) s = std::max(s, std::fabs(v[i]));
    scale[b] = s;
    if (s == 0.0f) {
      std::fill(q + begin, q + end, uint8_t{0});
      continue;
    }
    const float inv = 1.0f / s;
    for (int64_t i = begin; i < end; ++i) q[i] = lut[blockwise_lut_index(v[i] * inv)];
  }
}

HostNF4 quantize_nf4(const float* x, int64_t n, const float* offset_override) {
  HostNF4 r;
  r.n = n;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  r.packed.resize((n + 1) / 2);
  r.absmax.resize(blocks);
  quantize_nf4_blocks(x, n, r.packed.data(), r.absmax.data());
  r.offset = offset_override ? *offset_override : absmax_mean(r.absmax.data(), blocks);
  std::vector<float> centred(blocks);
  for (int64_t b = 0; b < blocks; ++b) centred[b] = r.absmax[b] - r.offset;
  r.absmax_q.resize(blocks);
  r.nested_absmax.resize((blocks + kNestedBlockSize - 1) / kNestedBlockSize);
  quantize_blockwise(centred.data(), blocks, kNestedBlockSize, dynamic_map_signed().data(),
                     r.absmax_q.data(), r.nested_absmax.data());
  return r;
}

std::vector<float> dequantize_absmax(const std::vector<uint8_t>& absmax_q,
                                     const std::vector<float>& nested_absmax, float offset) {
  const auto& map = dynamic_map_signed();
  std::vector<float> out(absmax_q.size());
  for (size_t b = 0; b < out.size(); ++b) {
    const float scaled = map[absmax_q[b]] * nested_absmax[b / kNestedBlockSize];
    out[b] = scaled + offset;
  }
  return out;
}

std::vector<float> dequantize_nf4(const std::vector<uint8_t>& packed,
                                  const std::vector<float>& absmax_dq, int64_t n) {
  const auto& code = nf4_code();
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t byte = packed[i / 2];
    const int c = i % 2 == 0 ? byte >> 4 : byte & 0xF;
    out[i] = code[c] * absmax_dq[i / kBlock];
  }
  return out;
}

std::vector<float> dequantize_nf4(const HostNF4& q) {
  return dequantize_nf4(q.packed, dequantize_absmax(q.absmax_q, q.nested_absmax, q.offset), q.n);
}

}  // namespace magellano::quant::reference
