// How the row-wise and pointwise kernels map onto the device (the fast-path dispatch of the
// non-GEMM ops; see DESIGN.md "Devices and their fast paths").
//
//   gpu  the portable kernels: a work-group per row with local-memory trees, or a work-item per
//        element. Every device can run them; GPUs get them.
//   cpu  one work-item walks a whole row (or a block of 16 elements) with explicit float16
//        vectors, sums in a fixed lane order. PoCL's CPU device vectorises across work-items
//        only in simple loops: inner loops, barriers, data-dependent branches and libm calls
//        (log1p, erf, even scalar log) leave the portable kernels scalar, at 1-10% of the copy
//        bandwidth.
// Both give the same results up to rounding order, and both are deterministic. Ops with the
// two mappings: softmax, cross_entropy, rms_norm, gated_rms_norm, sum_last / mean_last,
// split_last / concat_last, causal_conv1d, silu / softplus / exp / gelu.
#pragma once
#include <cstdint>

#include "magellano/runtime/build_options.hpp"
#include "magellano/runtime/context.hpp"

namespace magellano::ops {

enum class KernelMapping { automatic, gpu, cpu };

// The mapping the ops use on ctx's device: cpu on CPU devices, gpu elsewhere, unless forced.
KernelMapping kernel_mapping(const Context& ctx);

// Tests: run every device on one mapping (automatic: by device again), so a CPU-only CI also
// runs the GPUs' kernels.
void force_kernel_mapping(KernelMapping mapping);

const char* to_string(KernelMapping mapping);

// Work-group size of the cpu mapping's one-work-item-per-row kernels (they have no barriers).
int64_t cpu_group_size();

// Elements per work-item of the kernels with a VEC knob (pointwise activations, column sums):
// 16 in the cpu mapping (float16 vectors), 1 in the gpu mapping.
int64_t mapping_vec(const Context& ctx);
// Work-items for n elements at mapping_vec(ctx) each: ceil(n / VEC).
int64_t vec_items(const Context& ctx, int64_t n);
// BuildOptions().define("VEC", mapping_vec(ctx)).
BuildOptions vec_options(const Context& ctx);  // "automatic", "gpu", "cpu"

}  // namespace magellano::ops
