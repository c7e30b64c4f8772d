// How ops::attention runs on a device: the tile knobs of cl/attention.cl for each of its kernels
// under the chosen mapping (private to src/ops).
#pragma once
#include <cstdint>

#include "magellano/ops/attention.hpp"
#include "magellano/runtime/build_options.hpp"

namespace magellano::ops::detail {

struct AttentionDims {
  int64_t b, l, h, kvh, d;  // batch, length, query heads, kv heads, head width
};

// The kernels with tiles; each is built with its own knobs.
enum class AttentionKernel { fwd, dq, dkdv };

// One kernel's tiles: `block` rows per work-group (query rows for fwd and dq, key rows for dkdv),
// `cols` columns per streamed tile (keys, or queries for dkdv), `rows` rows per work-item,
// `col_groups` work-items sharing a row (register tiles: cols / 4; else 1).
struct AttentionTileKnobs {
  int64_t block = 64, cols = 32, rows = 1, col_groups = 1;
  int64_t items() const { return block / rows * col_groups; }
};

struct AttentionPlan {
  bool group_per_block = false;
  bool register_tiles = false;  // the *_rt kernels (CG = col_groups)
  int64_t vec = 1;  // VEC of cl/attention.cl, every kernel
  AttentionTileKnobs fwd, dq, dkdv;
  // Build options of cl/attention.cl for one kernel (BQ, BK, ROWS, HEADDIM, VEC, CG).
  BuildOptions knobs(const AttentionDims& d, AttentionKernel kernel) const;
  // The kernel's name in cl/attention.cl under this mapping.
  const char* kernel_name(AttentionKernel kernel) const;
};

// Local memory (floats) a kernel needs with these tiles (the formulas of cl/attention.cl).
int64_t attention_local_floats(AttentionKernel kernel, int64_t d, const AttentionTileKnobs& t, bool register_tiles);

// Throws Error (one line, what to change) when the options cannot run on this device.
AttentionPlan plan_attention(const Context& ctx, const AttentionDims& d, const AttentionOptions& options);

}  // namespace magellano::ops::detail
