// The code books of NF4 double quantization, built the way bitsandbytes builds them.
#include <algorithm>
#include <cmath>
#include <vector>

#include "magellano/ops/nf4.hpp"

namespace magellano::ops {

const std::array<float, 16>& nf4_code() {
  static const std::array<float, 16> code = {
      -1.0f,
      -0.6961928009986877f,
      -0.5250730514526367f,
      -0.39491748809814453f,
      -0.28444138169288635f,
      -0.18477343022823334f,
      -0.09105003625154495f,
      0.0f,
      0.07958029955625534f,
      0.16093020141124725f,
      0.24611230194568634f,
      0.33791524171829224f,
      0.44070982933044434f,
      0.5626170039176941f,
      0.7229568362236023f,
      1.0f};
  return code;
}

namespace {

// torch.linspace(start, end, steps, dtype=float32) on the CPU: the first half counts up from
// start, the second half down from end, each value one fused multiply-add in fp32 (checked
// against torch 2.15 for every step count the map uses).
std::vector<float> linspace_f32(float start, float end, int steps) {
  const float step = (end - start) / static_cast<float>(steps - 1);
  std::vector<float> out(steps);
  for (int i = 0; i < steps; ++i)
    out[i] = i < steps / 2 ? std::fma(step, static_cast<float>(i), start)
                           : std::fma(-step, static_cast<float>(steps - i - 1), end);
  return out;
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent i = 0..6 the
// midpoints of linspace(0.1, 1, 2^i + 1), scaled by 10^(i - 6), with both signs; then 0 and 1;
// sorted. All arithmetic in fp32 as torch does it (10^(i-6) is a double rounded to fp32).
std::array<float, 256> build_dynamic_map() {
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> b = linspace_f32(0.1f, 1.0f, (1 << i) + 1);
    const float scale = static_cast<float>(std::pow(10.0, i - 6));
    std::vector<float> means;
    for (size_t k = 0; k + 1 < b.size(); ++k) means.push_back((b[k] + b[k + 1]) / 2.0f);
    for (float m : means) data.push_back(scale * m);
    for (float m : means) data.push_back(-scale * m);
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

}  // namespace

const std::array<float, 256>& dynamic_map_signed() {
  static const std::array<float, 256> map = build_dynamic_map();
  return map;
}

std::vector<uint8_t> blockwise_lut(const float* map) {
  float mids[255];
  for (int k = 0; k < 255; ++k) mids[k] = 0.5f * (map[k] + map[k + 1]);
  std::vector<uint8_t> lut(65536);
  int code = 0;
  for (int i = 0; i < 65536; ++i) {
    const float val = -1.0f + (2.0f * static_cast<float>(i)) / 65535.0f;
    while (code < 255 && mids[code] < val) ++code;
    lut[i] = static_cast<uint8_t>(code);
  }
  return lut;
}

}  // namespace magellano::ops
