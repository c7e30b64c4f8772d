// How the row-wise and pointwise kernels of the non-GEMM ops map onto the device: the dispatch
// of their CPU fast paths (DESIGN.md, "Devices and their fast paths").
//
//   gpu  the portable kernels: a work-group per row with local-memory trees, or a work-item per
//        element. Every device runs them; GPUs get them.
//   cpu  a work-item walks a whole row, or a block of 16 elements or columns, with explicit
//        float16 vectors; row sums fold the 16 lanes in a fixed tree. PoCL's CPU device
//        vectorises across work-items only in simple loops: inner loops, barriers, per-element
//        index division and libm calls (log1p, erf, even scalar log) leave the portable kernels
//        scalar, at 1-10% of the copy bandwidth (softmax, softplus, gelu: about 1%).
// Both mappings are deterministic and give the same results up to rounding order (column sums:
// the same bits). The ops with both: softmax, cross_entropy, rms_norm, gated_rms_norm,
// sum_last / mean_last and the backward of sum / mean, split_last / concat_last, causal_conv1d
// (width 4), silu, softplus, exp, gelu, add, mul, scale and gradient accumulation (f32), column
// sums (matmul's bias and every colsum_into), gather_rows / embedding and scatter_add_rows (f32),
// row_scale, expert_mlp's swiglu / gelu, and mamba_ssm_step (a work-item per 16 channels).
#pragma once
#include <cstdint>

#include "magellano/runtime/build_options.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/device.hpp"

namespace magellano::ops {

enum class KernelMapping { automatic, gpu, cpu };

// The mapping for a device: cpu on CPU devices, gpu on every other, unless forced.
KernelMapping kernel_mapping(const DeviceInfo& device);
// The mapping the ops use on ctx's device.
KernelMapping kernel_mapping(const Context& ctx);

// Tests: run every device on one mapping (automatic: by device again), so a CPU-only CI also
// runs the GPUs' kernels.
void force_kernel_mapping(KernelMapping mapping);

const char* to_string(KernelMapping mapping);  // "automatic", "gpu", "cpu"

// For the launchers (src/ops):
// Work-group size of the cpu mapping's one-work-item-per-row kernels (no barriers): one row a
// group keeps every core busy when rows are few (B * L), and PoCL's cost per group (about a
// microsecond) is small next to a row's work.
constexpr int64_t kCpuGroupSize = 1;
// Elements (or columns) per work-item of the kernels with a VEC knob: 16 in the cpu mapping,
// 1 in the gpu mapping; ceil(n / VEC) work-items for n; and the knob as a build option.
int64_t mapping_vec(const Context& ctx);
int64_t vec_items(const Context& ctx, int64_t n);
BuildOptions vec_options(const Context& ctx);

}  // namespace magellano::ops
