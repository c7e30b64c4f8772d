// Float64 reference of AdamW with bitsandbytes' 8-bit blockwise moments (cl/adamw.cl
// adamw8_step; include/magellano/optim/adamw.hpp, optim/dynamic_map.hpp), over one flat pack
// chunk. Every fp32 operation of the kernel is done in float64 and rounded to fp32 on its own
// (float(double(a) op double(b)) is the correctly rounded fp32 result for + - * / and sqrt), so
// the reference reproduces the kernel's codes, absmax and parameters bit for bit when the
// kernel rounds each operation (FP_CONTRACT OFF, correctly rounded division and sqrt).
// Nearest codes are found by a linear scan over the fp32 midpoints (the kernel: a binary
// search); nearest_code_exact is the plain argmin of |x - code| in float64, to show the two
// differ only at the midpoints' last fp32 bit.
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/optim/dynamic_map.hpp"

namespace mgtest {

// The step's fp32 scalars as AdamW::step passes them (double, rounded to float).
struct Adamw8Scalars {
  float decay, b1, omb1, b2, omb2, step_size, bc2_sqrt, eps, coef;
  static Adamw8Scalars make(float lr, float wd, float beta1, float beta2, float eps, int64_t t, float coef);
};

// Deliberately broken variants, for tests that show a comparison catches them.
enum class Adamw8Break { none, no_sign_fix, round_down, block_128 };

// One chunk's 8-bit moments: (n) codes and (ceil(n / 256)) absmax each.
struct Adamw8State {
  std::vector<uint8_t> mc, vc;
  std::vector<float> ma, va;
  explicit Adamw8State(int64_t n = 0);
};

// One step over p (n values, fp32; half_params: rounded to nearest fp16 after the update),
// g (n) stored gradients read times s.coef; elements [0, decay_end) are in the decay group.
void adamw8_step_reference(std::vector<float>& p, const std::vector<float>& g, Adamw8State& st,
                           int64_t decay_end, const Adamw8Scalars& s, bool half_params = false,
                           Adamw8Break broken = Adamw8Break::none);

// The nearest code by the fp32-midpoint rule (linear scan), and by float64 argmin (ties low).
int nearest_code_reference(const magellano::optim::DynamicMap& map, float x);
int nearest_code_exact(const magellano::optim::DynamicMap& map, double x);

// The value a code reads back as: code * absmax in fp32.
float dequantize_reference(const magellano::optim::DynamicMap& map, uint8_t c, float absmax);

}  // namespace mgtest
