// Fused multi-head attention (flash-attention style) with grouped-query heads, on the device, with
// autograd.
//
//   q: (B, L, nH, d)      k, v: (B, L, nKV, d)      out: (B, L, nH, d)
// The layout the q/k/v projections write, no transposes. Query head j reads kv head j / (nH / nKV)
// (contiguous blocks of query heads share a kv head; nKV must divide nH). For every (b, j):
//   S = scale · q_j k_{kv(j)}ᵀ  (L × L),  S[t, s] = -inf where causal and s > t and s >= P_b
//   out_j = softmax(S) v_{kv(j)}          (softmax over s)
// P_b: the prefix length of sequence b (prefix-LM, GLM-style): with `prefix` given, key s is seen
// from query t iff s <= t or s < P_b, so the prefix is bidirectional and the suffix causal; lengths
// are clamped to [0, L] (0 and 1 are plain causal attention). Without it, P_b = 0.
// scale = 1/√d unless given. Head widths d: any multiple of 8 from 8 to 256 (32..128 in the
// models); any L >= 1.
//
// The algorithm never forms S in global memory: a work-group per block of query rows keeps the
// block's queries in local memory, streams key tiles through it (kᵀ staged in local memory) and
// keeps a running max m and sum l per row (online softmax), rescaling its output accumulator as
// the max grows; memory is O(L). Between forward and backward it saves only the log-sum-exp
// lse = m + log(l), (B, nH, L). The backward recomputes P = exp(S - lse) tile by tile:
//   D[t]   = Σ_c dout[t, c] out[t, c]                       (B, nH, L)
//   dP     = dout vᵀ,  dS = P ∘ (dP - D)
//   dq     = scale · dS k        one work-group per (b, query head, query block), over key blocks
//   dk     = scale · dSᵀ q,  dv = Pᵀ dout   one work-group per (b, kv head, key block), over the
//            query heads sharing that kv head and their query blocks, so no atomics
// fp32 math; deterministic (every sum in a fixed order; no atomics).
#pragma once
#include <cstdint>

#include "magellano/autograd/tape.hpp"

namespace magellano::ops {

// How work-items map onto the tiles (cl/attention.cl). `group_per_block` (GPUs): a work-group of
// ~BQ / rows work-items per query block, each owning `rows` query rows, the key tile transposed in
// local memory and read as a broadcast. `item_per_block` (CPUs): one work-item per block walks all
// its rows with wide vectors. `automatic` follows ops::kernel_mapping (gpu -> group_per_block,
// cpu -> item_per_block), so a forced mapping (tests) switches it too, unless MAGELLANO_ATTENTION=
// group|item|tiles names the mapping for every automatic call. `register_tiles` (GPUs): the
// work-items of a group form a grid of 4-row groups x column groups, each holding a 4 x 4 tile of
// scores and a 4-row slice of the output in registers, as a GEMM does (its tiles: rows of a block,
// a multiple of 4, and the streamed tile's columns, a multiple of 4 dividing d; rows per work-item
// 4, vectors 4). Results agree to rounding.
enum class AttentionMapping { automatic, group_per_block, item_per_block, register_tiles };

// Tile knobs (0 = the mapping's default; src/ops/attention_plan.cpp): rows of a block (query rows
// for the forward and dq, key rows for dk/dv), columns of a streamed tile (keys; queries for
// dk/dv), rows per work-item, vector width (divides d and the streamed tiles' widths). Tiles that do not fit
// the device's local memory are halved (columns first, down to 16, then rows).
struct AttentionTiles {
  int block_q = 0, block_k = 0, rows = 0, vec = 0;
};

struct AttentionOptions {
  float scale = 0.0f;  // 0: 1/sqrt(d)
  bool causal = true;
  AttentionMapping mapping = AttentionMapping::automatic;
  AttentionTiles tiles;           // the forward kernel
  AttentionTiles backward_tiles;  // dq and dk/dv (0: the mapping's backward default)
  // (B) i32: per-sequence prefix lengths (see above); undefined = none. Only with causal. The
  // backward reads it too (the tensor is kept until then).
  Tensor prefix;
};

// out (B, L, nH, d). Throws one clear line for: shapes that are not (B, L, heads, d) with the same
// B, L and d, nKV not dividing nH, a dtype other than f32, an unsupported head width.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {});

// The work of attention at these sizes, for benchmarks and op cases. FLOPs (a multiply-add counts
// 2): forward 4·B·nH·L²·d (QKᵀ and PV), half of it when causal (the useful triangle; the
// diagonal's extra L/2 per head is ignored); backward 2.5× the forward (QKᵀ again, dP = dO Vᵀ,
// dV, dQ, dK: five products to the forward's two). Bytes are the minimum any implementation moves:
// forward q, k, v in, out and lse out; backward q, k, v, out, dout, lse in, dq, dk, dv out.
struct AttentionWork {
  double fwd_flops = 0, bwd_flops = 0, fwd_bytes = 0, bwd_bytes = 0;
};
AttentionWork attention_work(int64_t b, int64_t l, int64_t heads, int64_t kv_heads, int64_t d, bool causal);

}  // namespace magellano::ops
