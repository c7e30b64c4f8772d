// How ops::ssd_scan runs on a device: the chunk length it really uses and the tile knobs of
// cl/ssd_chunk.cl for the chosen mapping (private to src/ops).
#pragma once
#include <cstdint>
#include <string>

#include "magellano/ops/ssd.hpp"
#include "magellano/runtime/build_options.hpp"

namespace magellano::ops::detail {

struct SsdDims {
  int64_t b, l, h, p, g, n;  // batch, length, heads, head width, groups, state size
};

// ROWS, ITEMS and CT of cl/ssd_chunk.cl for some of its kernels.
struct SsdTileKnobs {
  int64_t rows = 1, items = 1, cols = 64;
};

struct SsdPlan {
  int64_t chunk = 64;  // Q: steps per chunk
  int64_t nc = 1;      // chunks: ceil(L / Q)
  int64_t vec = 1;     // VEC of cl/ssd_chunk.cl, every kernel
  SsdTileKnobs fwd;    // the forward kernels, and chunk_outer / chunk_cb in the backward
  SsdTileKnobs bwd;    // ssd_bwd_dx, ssd_bwd_dbc
  bool group_per_chunk = false;
  // Build options of cl/ssd_chunk.cl with these tiles.
  BuildOptions chunk_knobs(const SsdDims& d, const SsdTileKnobs& tiles) const;
  BuildOptions scan_knobs() const;                   // build options of cl/ssd_scan.cl
  int64_t state_vec = 1;  // SVEC of cl/ssd_scan.cl: elements per work-item of the passes, head sums
};

// Local memory (floats) the chunk kernels need with these knobs (the largest kernel).
int64_t ssd_local_floats(int64_t chunk, int64_t vec, int64_t cols, int64_t items, int64_t p, int64_t n);

// Throws Error (one line, what to change) when the options cannot run on this device.
SsdPlan plan_ssd(const Context& ctx, const SsdDims& d, const SsdOptions& options);

}  // namespace magellano::ops::detail
