// bitsandbytes' dynamic quantization map and the blockwise 8-bit format of its optimizers
// (bitsandbytes/functional.py create_dynamic_map, csrc/kernels.cu
// kOptimizerStatic8bit2StateBlockwise), which AdamW's 8-bit moments use.
//
// create_dynamic_map(signed, max_exponent_bits = 7, total_bits = 8): for i = 0..6 the means of
// neighbouring points of torch.linspace(0.1, 1, f_i) (float32), f_i = 2^i + 1 signed and
// 2^(i+1) + 1 unsigned, times 10^(i - 6) (and their negatives when signed); then 0 and 1.0;
// sorted. 256 increasing fp32 values either way: signed [-0.99..., 1] with 0 at index 127,
// unsigned [0, 1] with 0 at index 0. Each decade [10^(i-7), 10^(i-6)) holds 2^i (signed) or
// 2^(i+1) (unsigned) codes, so small values keep their relative precision.
// The float32 arithmetic follows torch's CPU kernels: linspace's step = (end - start) / (f - 1)
// in float, point k = start + step * k for k < f / 2 and end - step * (f - 1 - k) above; the
// mean (a + b) / 2 in float; the product with the Python float 10^(i - 6) in float after
// rounding that factor to float. scripts/bnb_dynamic_map.py prints torch's own map for a
// side-by-side check (on a machine with PyTorch).
//
// Blockwise format (the optimizer's): a tensor of n values is cut into ceil(n / 256) blocks of
// kQuantBlock consecutive values (the last one short); a block stores absmax = max |x| (fp32)
// and one code per value: the index of the code nearest to x / absmax (absmax 0: the code of 0),
// the value read back as code[c] * absmax. Nearest is decided against the fp32 midpoints
// mid[k] = fl(code[k] + code[k+1]) * 0.5 (as the CUDA kernel computes them): c = the number of
// midpoints below x (a tie goes to the lower code; bitsandbytes' binary search may resolve an
// exact tie either way). For the signed first moment bitsandbytes adds a sign fix: a code whose
// sign differs from x's moves one step towards x's sign (so a tiny negative moment never reads
// back as +0).
#pragma once
#include <array>
#include <cstdint>

namespace magellano::optim {

constexpr int64_t kQuantBlock = 256;  // bitsandbytes' block size for 8-bit optimizer states

struct DynamicMap {
  std::array<float, 256> code{};  // increasing
  std::array<float, 255> mid{};   // mid[k] = fl(code[k] + code[k + 1]) * 0.5f
};

// The map of create_dynamic_map(signed, 7, 8).
const DynamicMap& dynamic_map(bool is_signed);

// Blocks of kQuantBlock covering n values.
inline int64_t quant_blocks(int64_t n) { return (n + kQuantBlock - 1) / kQuantBlock; }

}  // namespace magellano::optim
