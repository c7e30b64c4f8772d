// Mamba2's scan (SSD, the state-space dual of the Mamba2 paper; mamba_ssm's
// mamba_chunk_scan_combined and Hugging Face's Mamba2Mixer), on the device, with autograd; and
// its single decoding step.
//
//   x: (B, L, H, P)  H heads of width P           dt: (B, L, H) raw, before bias / softplus
//   dt_bias, A_log, D: (H)                         Bm, Cm: (B, L, G, N), G groups of heads
// Head h reads group g = h / (H / G) (contiguous blocks of heads). For every (b, h):
//   dt_t = clamp(softplus(dt[b, t, h] + dt_bias[h]), lo, hi)   (no softplus when dt.softplus is
//          false; softplus is torch's: linear above 20)
//   A    = -exp(A_log[h])            (the parameter is A_log, as in the Mamba2 modules)
//   S_t  = exp(dt_t A) S_{t-1} + dt_t x_t (outer) B_t      S: (P, N), S_{-1} = 0
//   y_t  = S_t C_t + D[h] x_t                               (no D term when D is undefined)
// returns y: (B, L, H, P), before Mamba2's gate and norm.
//
// The chunked algorithm (not a loop over L): per chunk of Q steps the cumulative sums of dt A,
// the chunk's own state as a product of its x and B, a sequential pass over the L/Q chunk states,
// and each output as products (C B^T masked by the decays, times dt x; C times the state entering
// the chunk). The backward is chunked the same way (a reverse pass over the chunk states, then the
// products' gradients). Between forward and backward it keeps the states at chunk edges,
// (B, H, L/Q, N, P), and two (B, H, L) sequences; never a (B, L, H, P, N) tensor.
// Gradients: x, dt (zero where the clamp is active), dt_bias, A_log, Bm, Cm, D. Deterministic:
// fixed-order reductions (per-head parameter gradients: per-chunk partials, then a column sum;
// dB, dC: per head, then summed over each group's heads in order), no atomics.
#pragma once
#include <cmath>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

// How a step size is made from the raw dt (the scan and the step use the same).
struct SsdDt {
  bool softplus = true;
  float lo = 0.0f, hi = INFINITY;  // time_step_limit; the clamp is a no-op at (0, inf)
};

// How work-items map onto each chunk's matrix products (cl/ssd_chunk.cl).
// `group_per_chunk`: a work-group of ~Q work-items per (b, chunk, head) shares tiles in local
// memory, each work-item a row (the GPU mapping). `item_per_chunk`: one work-item per
// (b, chunk, head) walks all rows with wide vectors (the CPU mapping). `automatic` picks
// group_per_chunk on GPUs and item_per_chunk elsewhere. Results agree to rounding.
enum class SsdMapping { automatic, group_per_chunk, item_per_chunk };

// Tile knobs (0 = the mapping's default; see src/ops/ssd_plan.cpp): rows per work-item, work-items
// per group, vector width (must divide P and N) and columns per staged tile (a multiple of vec).
struct SsdTiles {
  int rows = 0, items = 0, vec = 0, cols = 0;
};

struct SsdOptions {
  // Steps per chunk; 0: the device's default (ssd_default_chunk). A chunk longer than L is cut
  // to L rounded up to 8, and one whose tiles do not fit the device's local memory is halved
  // until they do (the chunk changes results only by rounding).
  int chunk = 0;
  SsdDt dt;
  SsdMapping mapping = SsdMapping::automatic;
  SsdTiles tiles;
};

// The chunk `chunk = 0` means on this device: kSsdDefaultChunk on GPUs and on CPUs.
constexpr int kSsdDefaultChunk = 64;
int ssd_default_chunk(const Context& ctx);
// The chunk the scan runs with over l steps when `chunk` is asked for (not 0), before any halving
// for local memory: a chunk longer than the sequence is cut to l rounded up to a multiple of 8.
int64_t ssd_chunk_for_length(int64_t chunk, int64_t l);

// final_state (optional): receives S after the last step, (B, H, P, N), the state ssd_step
// continues from (no gradient flows through it).
Tensor ssd_scan(const Tensor& x, const Tensor& dt, const Tensor& dt_bias, const Tensor& A_log,
                const Tensor& Bm, const Tensor& Cm, const Tensor& D, const SsdOptions& options = {},
                Tensor* final_state = nullptr);

// The work of ssd_scan at these sizes, for benchmarks and op cases. FLOPs are the chunked
// algorithm's useful ones (a multiply-add counts 2; of each chunk's C B^T and the products with
// it, only the causal half s <= t). Per (b, head) and chunk of q steps, with T = q (q + 1) / 2:
//   forward  chunk state 2qNP, state passing 2NP, C·S 2qNP, intra-chunk 2TP, D·x 2qP, and
//            C B^T 2TN per (b, group)
//   backward dS 2qNP, reverse passing 4NP, dx 2qNP + 2TP, W = dy x^T 2TP, dC 2qNP + 2TN,
//            dB 2qNP + 2TN, dcs 4qN, C B^T again 2TN per (b, group)
// Bytes are the minimum any implementation moves: inputs read once, outputs written once
// (forward x, dt, B, C in, y out; backward x, dt, B, C, dy in, dx, ddt, dB, dC out).
struct SsdWork {
  double fwd_flops = 0, bwd_flops = 0, fwd_bytes = 0, bwd_bytes = 0;
};
SsdWork ssd_scan_work(int64_t b, int64_t l, int64_t h, int64_t p, int64_t g, int64_t n, int64_t chunk);

// One decoding step, no autograd: x_t (B, H, P), dt_t (B, H) raw, B_t, C_t (B, G, N); state
// (B, H, P, N) updated in place. Returns y_t (B, H, P).
Tensor ssd_step(const Tensor& x_t, const Tensor& dt_t, const Tensor& dt_bias, const Tensor& A_log,
                const Tensor& B_t, const Tensor& C_t, const Tensor& D, const Tensor& state,
                const SsdDt& dt = {});

}  // namespace magellano::ops
