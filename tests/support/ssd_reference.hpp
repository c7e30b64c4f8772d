// Float64 references of Mamba2's SSD scan (a plain step-by-step recurrence over L, forward and
// backward) and of the gated group RMSNorm, for tests and composed layer references.
// Row-major vectors; shapes in comments; semantics as include/magellano/ops/ssd.hpp and
// include/magellano/ops/gated_rmsnorm.hpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace mgtest::ref {

using Vec = std::vector<double>;

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

// out = rmsnorm over each of `groups` contiguous groups of d / groups channels of (y * silu(z)),
// times w.  y, z: (rows, d); w: (d).
Vec gated_rms_norm(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d, int64_t groups,
                   double eps);
// {dy, dz, dw} of sum(out * dout).
std::vector<Vec> gated_rms_norm_bwd(const Vec& y, const Vec& z, const Vec& w, int64_t rows, int64_t d,
                                    int64_t groups, double eps, const Vec& dout);

}  // namespace mgtest::ref
