#include "magellano/ops/mamba_decode.hpp"

#include <string>

#include "check.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {

Tensor mamba_ssm_step(const Tensor& xc, const Tensor& dbc, const Tensor& dt_w, const Tensor& dt_b, const Tensor& A,
                      const Tensor& D, const Tensor& xz, const Tensor& h) {
  const char* op = "mamba_ssm_step";
  for (const Tensor* t : {&xc, &dbc, &dt_w, &dt_b, &A, &D, &xz, &h}) detail::require_f32(*t, op, "every tensor");
  if (!(xc.shape().ndim() == 2 && A.shape().ndim() == 2 && dt_w.shape().ndim() == 2))
    throw Error(std::string(op) + ": " + "xc must be (B, E), A (E, N) and dt_weight (E, R), got " + xc.shape().str() + ", " +
              A.shape().str() + " and " + dt_w.shape().str() + ".");
  const int64_t B = xc.size(0), E = xc.size(1), N = A.size(1), R = dt_w.size(1), S = R + 2 * N;
  if (!(A.size(0) == E && dt_w.size(0) == E && dt_b.shape() == Shape{E} && D.shape() == Shape{E} &&
              dbc.shape() == Shape{B, S} && xz.shape() == Shape{B, 2 * E} && h.shape() == Shape{B, E, N}))
    throw Error(std::string(op) + ": " + "shapes do not match: xc " + xc.shape().str() + ", dbc " + dbc.shape().str() +
              ", dt_weight " + dt_w.shape().str() + ", A " + A.shape().str() + ", xz " + xz.shape().str() + ", h " +
              h.shape().str() + ".");
  if (B < 1 || B > kDecodeGemvRows)
    throw Error(std::string(op) + ": takes 1 to " + std::to_string(kDecodeGemvRows) + " rows, got " +
                std::to_string(B) + ".");
  detail::require_int_sizes({B * E * N, B * 2 * E, E * R, B * S}, op, op);
  Context& ctx = xc.ctx();
  Tensor y = Tensor::empty(ctx, Shape{B, E});
  BuildOptions opt = BuildOptions().define("DSTATE", N).define("SDIM", S);
  if (kernel_mapping(ctx) == KernelMapping::cpu) {
    // A work-item per (row, block of 16 channels), in groups of 4: E 896 at batch 1 is 56 items.
    Launch(ctx, "mamba_decode", "mamba_ssm_step_cpu", opt)
        .arg(xc).arg(dbc).arg(dt_w).arg(dt_b).arg(A).arg(D).arg(xz).arg(h).arg(y).arg(E).arg(B)
        .run(B * ((E + 15) / 16), 4);
  } else {
    const int64_t lwg = 64, blocks = (E + lwg - 1) / lwg;
    Launch(ctx, "mamba_decode", op, opt.define("LWG", lwg))
        .arg(xc).arg(dbc).arg(dt_w).arg(dt_b).arg(A).arg(D).arg(xz).arg(h).arg(y).arg(E)
        .run(B * blocks * lwg, lwg);
  }
  return y;
}

}  // namespace magellano::ops
