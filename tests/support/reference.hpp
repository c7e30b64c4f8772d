// The float64 references of the ops, one per op, forward and backward: the op cases
// (tests/ops/) check the device against them, and the layer references (Mamba, MoE) are
// composed from them. Row-major vectors; shapes in comments. Backward functions add into their
// outputs (+=), so fan-out composes naturally; a gradient that is itself another op's forward
// (gather <-> scatter, transpose) is that op. Implementations: tests/support/reference/<family>.cpp,
// named as the op's header in include/magellano/ops/.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "magellano/generate/sampler.hpp"
#include "magellano/ops/moe_ops.hpp"
#include "magellano/quant/int4_group.hpp"

namespace mgtest::ref {

using Vec = std::vector<double>;

// ---- activation: pointwise functions, the value and derivative of one element --------------
double sigmoid(double x);
double silu(double x);      // x * sigmoid(x)
double silu_grad(double x);
double softplus(double x);  // log(1 + exp(x)); its derivative is sigmoid
double exponential(double x);
double gelu(double x);      // x * Phi(x), erf form
double gelu_grad(double x);
// f or its derivative over a vector: y[i] = f(x[i]);  dx[i] += dy[i] * df(x[i]).
Vec pointwise(const Vec& x, double (*f)(double));
void pointwise_bwd(const Vec& x, double (*df)(double), const Vec& dy, Vec& dx);
Vec silu(const Vec& x);
void silu_bwd(const Vec& x, const Vec& dy, Vec& dx);

// ---- elementwise: b repeats over a's leading rows (b.size() divides a.size()) ---------------
Vec add(const Vec& a, const Vec& b, double alpha = 1.0);  // a + alpha * b
void add_bwd(const Vec& a, const Vec& b, double alpha, const Vec& dy, Vec& da, Vec& db);
Vec mul(const Vec& a, const Vec& b);  // a * b
void mul_bwd(const Vec& a, const Vec& b, const Vec& dy, Vec& da, Vec& db);
Vec scale(const Vec& x, double s);  // s * x; its backward is scale(dy, s)

// ---- reduce: x (rows, cols) ----------------------------------------------------------------
Vec sum(const Vec& x);   // (1)
Vec mean(const Vec& x);  // (1)
void sum_bwd(const Vec& x, const Vec& dy, Vec& dx);
void mean_bwd(const Vec& x, const Vec& dy, Vec& dx);
Vec sum_last(const Vec& x, int64_t cols);   // (rows)
Vec mean_last(const Vec& x, int64_t cols);  // (rows)
void sum_last_bwd(int64_t cols, const Vec& dy, Vec& dx);
void mean_last_bwd(int64_t cols, const Vec& dy, Vec& dx);

// ---- rmsnorm: over rows of d: x (rows, d), w (d) ---------------------------------------------
Vec rmsnorm(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps);
void rmsnorm_bwd(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps, const Vec& dy,
                 Vec& dx, Vec& dw);

// ---- softmax: over the last dimension, x (rows, cols) ---------------------------------------
Vec softmax(const Vec& x, int64_t cols);
void softmax_bwd(const Vec& x, int64_t cols, const Vec& dy, Vec& dx);
double logsumexp(const double* row, int64_t cols);  // max-subtracted

// ---- cross_entropy: mean over counted rows of lse - x[t] ------------------------------------
// x (N, V), t (N) ids as doubles; a row counts when t != ignore and 0 <= t < V. Returns (1).
Vec cross_entropy(const Vec& x, const Vec& t, int64_t v, int ignore);
void cross_entropy_bwd(const Vec& x, const Vec& t, int64_t v, int ignore, const Vec& dloss, Vec& dx);

// ---- conv1d: causal depthwise, x (B, L, C), w (C, W), bias (C, or empty for none) ------------
Vec conv(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width, const Vec& bias);
void conv_bwd(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width,
              const Vec& dy, Vec& dx, Vec& dw, Vec& dbias);  // dbias untouched when empty

// ---- matmul: y (batch, M, N) = op(a) op(b) (+ bias (N)); op = transpose where ta / tb --------
// a: (batch, M, K) or (batch, K, M) with ta; b: likewise (K, N) or (N, K), one matrix for
// every batch when shared_b.
struct MatmulDims {
  int64_t batch, m, n, k;
  bool ta = false, tb = false, shared_b = false;
};
Vec matmul(const MatmulDims& s, const Vec& a, const Vec& b, const Vec& bias = {});
void matmul_bwd(const MatmulDims& s, const Vec& a, const Vec& b, const Vec& dy, Vec& da, Vec& db,
                Vec* dbias = nullptr);
// y (M, N) = x (M, K) · wᵀ (w: (N, K)) + b (N, or empty): matmul with tb.
Vec linear(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& b = {});
void linear_bwd(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& dy,
                Vec& dx, Vec& dw, Vec* db = nullptr);

// ---- int4: group-wise int4 weights (ops/int4.hpp, quant/int4_group.hpp), w (rows, cols), groups
// of g columns (g divides cols). Weights of type wt (the quotient w / scale is rounded to it),
// scales of type st (default: fp32 weights with fp16 scales, the device op's case), codes in
// [-8, 7], all in float64 (the format's roundings applied to exact float64 values).
using magellano::quant::FloatType;
// v rounded to the nearest value of t (ties to even, subnormals included); +-Inf beyond t's range.
double round_float(double v, FloatType t);
double round_f16(double v);  // round_float(v, FloatType::f16)
struct Int4Ref {
  std::vector<int> codes;  // (rows, cols)
  Vec scales;              // (rows, cols / g)
};
Int4Ref int4_quantize(const Vec& w, int64_t rows, int64_t cols, int64_t g, FloatType wt = FloatType::f32,
                      FloatType st = FloatType::f16);
Vec int4_dequantize(const Int4Ref& q, int64_t rows, int64_t cols, int64_t g,
                    FloatType st = FloatType::f16);  // (rows, cols)
// Codes from compressed-tensors words (rows, ceil(cols / 8)): column c in bits 4 (c % 8) of word c / 8.
std::vector<int> int4_unpack(const std::vector<int32_t>& words, int64_t rows, int64_t cols);

// ---- index: src (rows, d), idx (N) ids as doubles; out-of-range ids read zeros / add nothing --
Vec gather_rows(const Vec& src, const Vec& idx, int64_t rows, int64_t d);       // (N, d)
Vec scatter_add_rows(const Vec& src, const Vec& idx, int64_t rows, int64_t d);  // (rows, d)
// sort_indices: the stable sorting permutation of keys (equal keys keep their order).
std::vector<int32_t> stable_argsort(const std::vector<int32_t>& keys);

// ---- shape ----------------------------------------------------------------------------------
// Columns [from, from + width) of x (rows, total), and the matching backward (+=).
Vec cols(const Vec& x, int64_t rows, int64_t total, int64_t from, int64_t width);
void cols_bwd(Vec& dx, int64_t rows, int64_t total, int64_t from, int64_t width, const Vec& dy);
// x (batch, m, n) -> (batch, n, m); its backward is transpose_last2(dy, batch, n, m).
Vec transpose_last2(const Vec& x, int64_t batch, int64_t m, int64_t n);

// ---- rows: rows [from, to) of x (rows, d), and the matching backward (+=) ---------------------
Vec rows(const Vec& x, int64_t d, int64_t from, int64_t to);
void rows_bwd(Vec& dx, int64_t d, int64_t from, int64_t to, const Vec& dy);

// ---- dropout: y = x * keep / (1 - p), keep as ops::dropout_keeps(seed, i, p) ------------------
Vec dropout(const Vec& x, double p, uint64_t seed);
void dropout_bwd(double p, uint64_t seed, const Vec& dy, Vec& dx);

// ---- moe_ops: probs / logits (N, X) ----------------------------------------------------------
// Indices of the K largest of row p (length X), decreasing, ties to the lower index.
std::vector<int> topk(const double* p, int64_t x, int64_t k);
// ops::topk's weights (N, K) from scores (N, X) by mode (renorm, raw, softmax over the K), and
// their backward into the scores (+=).
Vec topk_weights(const Vec& s, int64_t n, int64_t x, int64_t k, magellano::ops::TopKWeights mode);
void topk_weights_bwd(const Vec& s, int64_t n, int64_t x, int64_t k, magellano::ops::TopKWeights mode,
                      const Vec& dw, Vec& ds);
Vec topk_renorm(const Vec& p, int64_t n, int64_t x, int64_t k);  // topk_weights(..., renorm)
void topk_renorm_bwd(const Vec& p, int64_t n, int64_t x, int64_t k, const Vec& dw, Vec& dp);
Vec row_scale(const Vec& x, const Vec& w, int64_t r, int64_t d);  // x (R, D), w (R)
void row_scale_bwd(const Vec& x, const Vec& w, int64_t r, int64_t d, const Vec& dy, Vec& dx, Vec& dw);
// X * sum_e counts[e] / (N K) * mean_n p[n, e], (1); counts (X) as doubles.
Vec balance_loss(const Vec& p, const Vec& counts, int64_t n, int64_t x, int64_t k);
void balance_loss_bwd(const Vec& counts, int64_t n, int64_t x, int64_t k, const Vec& dloss, Vec& dp);
Vec z_loss(const Vec& logits, int64_t n, int64_t x);  // mean_n lse_n^2, (1)
void z_loss_bwd(const Vec& logits, int64_t n, int64_t x, const Vec& dloss, Vec& dlogits);
// The routing plan of flat expert ids (N K) in [0, X): ids stably sorted by expert (perm), the
// token of each sorted row (perm / K), per-expert counts and offsets (X + 1).
struct RoutingPlan {
  std::vector<int32_t> perm, token_of, counts, offsets;
};
RoutingPlan routing_plan(const std::vector<int32_t>& ids, int64_t x, int64_t k);

// ---- expert_mlp: w1, w3 (F, D), w2 (D, F); SwiGLU a = silu(h1) * h3 when w3, else GELU(h1) ----
struct ExpertRow {  // one row through one expert: h1 = w1 x, h3 = w3 x, a (F), y = w2 a (D)
  Vec h1, h3, a, y;
};
void expert_row(const double* x, int64_t d, int64_t f, const Vec& w1, const Vec& w2, const Vec* w3,
                ExpertRow& out);
// The gradients of y · dy, given the row's forward `fw` (+= into dx (D) and dw1, dw2, dw3).
void expert_row_bwd(const double* x, int64_t d, int64_t f, const Vec& w1, const Vec& w2,
                    const Vec* w3, const ExpertRow& fw, const double* dy, double* dx, Vec& dw1,
                    Vec& dw2, Vec* dw3);
// The grouped op: xs (R, D), expert e owns rows [offsets[e], offsets[e + 1]); w3s empty: GELU.
Vec expert_mlp(const Vec& xs, int64_t d, int64_t f, const std::vector<int64_t>& offsets,
               const std::vector<Vec>& w1s, const std::vector<Vec>& w2s, const std::vector<Vec>& w3s);
void expert_mlp_bwd(const Vec& xs, int64_t d, int64_t f, const std::vector<int64_t>& offsets,
                    const std::vector<Vec>& w1s, const std::vector<Vec>& w2s,
                    const std::vector<Vec>& w3s, const Vec& dy, Vec& dxs, std::vector<Vec>& dw1s,
                    std::vector<Vec>& dw2s, std::vector<Vec>& dw3s);

// ---- selective_scan: mamba_ssm's selective_scan_ref ------------------------------------------
// in = {u, delta, A, B, C, D, z, delta_bias} with u, delta, z: (B, L, E), A: (E, N), B, C:
// (B, L, N), D, delta_bias: (E). Gradients of all eight are returned (those of z and
// delta_bias are meaningless when absent).
struct ScanDims {
  int64_t b, l, e, n;
  bool z = true, bias = true, softplus = true;
};
Vec scan(const ScanDims& s, const std::vector<Vec>& in);
std::vector<Vec> scan_bwd(const ScanDims& s, const std::vector<Vec>& in, const Vec& dout);

// ---- ssd: Mamba2's scan as a plain step-by-step recurrence over L, and its decoding step ------
// Semantics as include/magellano/ops/ssd.hpp. Like scan_bwd, the backward returns its gradients.
struct SsdDims {
  int64_t b, l, h, p, g, n;
  bool has_D = true, softplus = true;
  double lo = 0.0, hi = INFINITY;  // the dt clamp
};
// The step size from a raw dt (softplus linear above 20, then the clamp), and its slope (0 where
// the clamp is active).
double ssd_dt(const SsdDims& s, double raw);
double ssd_dt_slope(const SsdDims& s, double raw);
// in = {x (B, L, H, P), dt (B, L, H), dt_bias (H), A_log (H), B (B, L, G, N), C (B, L, G, N),
//       D (H; ignored unless has_D)}. Returns y (B, L, H, P); final_state (B, H, P, N) if given.
Vec ssd_scan(const SsdDims& s, const std::vector<Vec>& in, Vec* final_state = nullptr);
// Gradients of sum(y * dy) for all seven inputs (D's is meaningless unless has_D), by the reverse
// recurrence (every state kept).
std::vector<Vec> ssd_scan_bwd(const SsdDims& s, const std::vector<Vec>& in, const Vec& dy);
// One decoding step from `state` (B, H, P, N), updated in place: x_t (B, H, P), dt_t (B, H),
// B_t, C_t (B, G, N), in order {x_t, dt_t, dt_bias, A_log, B_t, C_t, D}. Returns y_t (B, H, P).
Vec ssd_step(const SsdDims& s, const std::vector<Vec>& in, Vec& state);

// ---- attention: q (B, L, H, d), k, v (B, L, KVH, d); query head j reads kv head j / (H / KVH) ----
// out = softmax(scale · q kᵀ, masked to s <= t or s < prefix[b] when causal) v, (B, L, H, d): the
// naive form, every (L × L) score matrix in full. The backward returns {dq, dk, dv} of
// sum(out * dout). prefix: (B) prefix lengths (prefix-LM), empty = none.
struct AttentionDims {
  int64_t b, l, h, kvh, d;
  double scale;
  bool causal = true;
  std::vector<int64_t> prefix = {};
};
Vec attention(const AttentionDims& s, const Vec& q, const Vec& k, const Vec& v);
std::vector<Vec> attention_bwd(const AttentionDims& s, const Vec& q, const Vec& k, const Vec& v, const Vec& dout);
// RoPE, NeoX pairing (i, i + d/2): x (B, L, heads, d), row t at position start + t, angle
// pos · theta^(-2i/d) in double; `inverse` rotates by minus the angle (rope's backward).
Vec rope(const Vec& x, int64_t b, int64_t l, int64_t heads, int64_t d, double theta, int64_t start,
         bool inverse = false);
// GLM's 2D rotary: ids (B·L, 2) = (position id, block id) per token; each head's first half
// [0, d/2) is rotated by the position id and the second half by the block id, each half written
// out here on its own (pairs i, i + d/4 of the half, angle id · theta^(-2i/(d/2)), in double).
Vec rope_2d(const Vec& x, const std::vector<int32_t>& ids, int64_t b, int64_t l, int64_t heads, int64_t d, double theta,
            bool inverse = false);
// One decoding query q (H, d) against a plain list of the row's past keys and values (T, KVH, d),
// all T of them visible: (H, d); zeros when T = 0.
Vec attention_decode(const Vec& q, const Vec& keys, const Vec& values, int64_t t, int64_t h, int64_t kvh, int64_t d,
                     double scale);

// ---- gated_rmsnorm: Mamba2's norm; y, z (rows, d), w (d); groups divide d ---------------------
// out = rmsnorm over each of `groups` contiguous groups of d / groups channels of (y * silu(z)),
// times w. The backward returns {dy, dz, dw} of sum(out * dout).
Vec gated_rms_norm(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d, int64_t groups,
                   double eps);
std::vector<Vec> gated_rms_norm_bwd(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d,
                                    int64_t groups, double eps, const Vec& dout);

// ---- sample (generate/sampler.hpp, cl/sample.cl) ----------------------------------------------
// The filtered distribution of one row of logits, in Hugging Face's order (repetition penalty
// on the ids where seen[id], temperature or greedy, top-k, top-p).
struct SampleDistribution {
  Vec probs;               // 0 outside the kept set
  std::vector<bool> kept;
  double p_margin = 1;     // distance of top_p from the nearest cumulative-mass step (top-p only)
};
SampleDistribution sample_distribution(const std::vector<float>& logits, const std::vector<uint8_t>& seen,
                                       const magellano::generate::SamplingParams& p);
// Philox4x32-10 (Random123's definition), and the uniform in [0, 1) that row `row` draws with
// at `step` (the top 24 bits of the first word).
std::array<uint32_t, 4> philox(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);
double philox_uniform(uint64_t seed, int64_t row, int64_t step);
// The draw at u: the first kept id (in id order) where the cumulative probability exceeds u;
// -1 when u is within `margin` of a boundary (f32 and f64 sums could disagree there).
int sample_draw(const SampleDistribution& r, double u, double margin);

// ---- decode_gemv: x (B, K), w (O, K); norm (K) or empty, bias (O) or empty, res (B, O) or empty --
// res + scale · (rmsnorm(x, norm, eps) · wᵀ + bias), (B, O).
Vec decode_gemv(const Vec& x, int64_t b, int64_t k, const Vec& w, int64_t o, const Vec& norm, double eps,
                const Vec& bias, const Vec& res, double scale);

// ---- mamba_decode: one Mamba1 step between its projections (ops/mamba_decode.hpp) ----------
// xz (B, 2E), w (E, W), bias (E) or empty, conv (B, E, W-1) updated; returns xc (B, E).
Vec mamba_conv_step(const Vec& xz, int64_t b, int64_t e, const Vec& w, int64_t width, const Vec& bias, Vec& conv);
// xc (B, E), dbc (B, R + 2N), dt_w (E, R), dt_b (E), A (E, N), D (E), xz (B, 2E), h (B, E, N)
// updated; returns y (B, E).
Vec mamba_ssm_step(const Vec& xc, const Vec& dbc, const Vec& dt_w, const Vec& dt_b, const Vec& A, const Vec& D,
                   const Vec& xz, Vec& h, int64_t b, int64_t e, int64_t r, int64_t n);

// ---- moe_decode: x (T, D), norm (D), gate (X, D); w1s, w3s (X, F, D), w2s (X, D, F) stacked -----
struct DecodeRouting {
  Vec xn;                // (T, D)
  std::vector<int> idx;  // (T, K), descending score, ties to the lower index
  Vec weights;           // (T, K)
};
// mode: magellano::ops::DecodeRouter as an int (0 renorm, 1 raw, 2 softmax over the top-K logits).
DecodeRouting moe_decode_route(const Vec& x, int64_t t, int64_t d, const Vec& norm, double eps, const Vec& gate,
                               int64_t nx, int64_t k, int mode);
// x + scale · (Σ_k w · expert(xn) + extra); w3s empty: GELU; extra (T, D) or empty.
Vec moe_decode_experts(const Vec& x, int64_t t, int64_t d, int64_t f, const DecodeRouting& r, int64_t k,
                       const Vec& w1s, const Vec& w3s, const Vec& w2s, double scale, const Vec& extra);

}  // namespace mgtest::ref
