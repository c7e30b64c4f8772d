#include "magellano/optim/dynamic_map.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "magellano/runtime/error.hpp"

namespace magellano::optim {
namespace {

// torch.linspace(start, end, steps, dtype=float32) as ATen's CPU kernel computes it.
std::vector<float> linspace_f32(float start, float end, int64_t steps) {
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  std::vector<float> out(static_cast<size_t>(steps));
  for (int64_t k = 0; k < steps; ++k) {
    volatile float t = step * static_cast<float>(k < halfway ? k : steps - 1 - k);  // no FMA
    out[static_cast<size_t>(k)] = k < halfway ? start + t : end - t;
  }
  return out;
}

DynamicMap build(bool is_signed) {
  constexpr int max_exponent_bits = 7, total_bits = 8;
  constexpr int non_sign_bits = total_bits - 1;
  std::vector<float> data;
  for (int i = 0; i < max_exponent_bits; ++i) {
    const int64_t items = (int64_t{1} << (i + non_sign_bits - max_exponent_bits + (is_signed ? 0 : 1))) + 1;
    const auto b = linspace_f32(0.1f, 1.0f, items);
    // Python's 10 ** (i - 6): pow(10.0, i - 6) in double for a negative exponent, the int 1 at 0.
    const float factor = static_cast<float>(std::pow(10.0, double(-(max_exponent_bits - 1) + i)));
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      volatile float sum = b[k] + b[k + 1];
      const float mean = sum / 2.0f;
      volatile float v = factor * mean;
      const float value = v;
      data.push_back(value);
      if (is_signed) data.push_back(-value);
    }
  }
  // additional_items = 2^(7 - 7) - 1 = 0 for 8 bits: none.
  data.push_back(0.0f);
  data.push_back(1.0f);
  if (data.size() != 256) throw Error("dynamic_map: built " + std::to_string(data.size()) + " codes, not 256.");
  std::sort(data.begin(), data.end());
  DynamicMap m;
  std::copy(data.begin(), data.end(), m.code.begin());
  for (size_t k = 0; k < 255; ++k) {
    volatile float sum = m.code[k] + m.code[k + 1];
    m.mid[k] = sum * 0.5f;
  }
  return m;
}

}  // namespace

const DynamicMap& dynamic_map(bool is_signed) {
  static const DynamicMap s = build(true), u = build(false);
  return is_signed ? s : u;
}

}  // namespace magellano::optim
