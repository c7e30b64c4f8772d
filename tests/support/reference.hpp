// Plain float64 references of the ops the layers are built from, forward and backward, for
// composing references of whole layers (Mamba, MoE). Row-major vectors; shapes in comments.
// Backward functions add into their outputs (+=), so fan-out composes naturally.
#pragma once
#include <cstdint>
#include <vector>

namespace mgtest::ref {

using Vec = std::vector<double>;

// y (M, N) = x (M, K) · wᵀ (w: (N, K)) + b (N, or empty)
Vec linear(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& b = {});
void linear_bwd(const Vec& x, int64_t m, int64_t k, const Vec& w, int64_t n, const Vec& dy,
                Vec& dx, Vec& dw, Vec* db = nullptr);

// causal depthwise conv: x (B, L, C), w (C, W), b (C)
Vec conv(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width, const Vec& bias);
void conv_bwd(const Vec& x, int64_t b, int64_t l, int64_t c, const Vec& w, int64_t width,
              const Vec& dy, Vec& dx, Vec& dw, Vec& dbias);

Vec silu(const Vec& x);
void silu_bwd(const Vec& x, const Vec& dy, Vec& dx);

// RMSNorm over rows of d: x (rows, d), w (d)
Vec rmsnorm(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps);
void rmsnorm_bwd(const Vec& x, int64_t rows, int64_t d, const Vec& w, double eps, const Vec& dy,
                 Vec& dx, Vec& dw);

// Columns [from, from + width) of x (rows, total), and the matching backward (+=).
Vec cols(const Vec& x, int64_t rows, int64_t total, int64_t from, int64_t width);
void cols_bwd(Vec& dx, int64_t rows, int64_t total, int64_t from, int64_t width, const Vec& dy);

// Selective scan (mamba_ssm's selective_scan_ref): in = {u, delta, A, B, C, D, z, delta_bias}
// with u, delta, z: (B, L, E), A: (E, N), B, C: (B, L, N), D, delta_bias: (E). Gradients of
// all eight are returned (those of z and delta_bias are meaningless when absent).
struct ScanDims {
  int64_t b, l, e, n;
  bool z = true, bias = true, softplus = true;
};
Vec scan(const ScanDims& s, const std::vector<Vec>& in);
std::vector<Vec> scan_bwd(const ScanDims& s, const std::vector<Vec>& in, const Vec& dout);

}  // namespace mgtest::ref
