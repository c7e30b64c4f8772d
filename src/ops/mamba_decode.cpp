#include "magellano/ops/mamba_decode.hpp"

#include <cstdlib>
#include <string>

#include "check.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {

Tensor mamba_ssm_step(const Tensor& xc, const Tensor& x_proj_w, const Tensor& dt_w, const Tensor& dt_b,
                      const Tensor& A, const Tensor& D, const Tensor& xz, const Tensor& h) {
  const char* op = "mamba_ssm_step";
  for (const Tensor* t : {&xc, &x_proj_w, &dt_w, &dt_b, &A, &D, &xz, &h}) detail::require_f32(*t, op, "every tensor");
  if (!(xc.shape().ndim() == 2 && A.shape().ndim() == 2 && dt_w.shape().ndim() == 2))
    throw Error(std::string(op) + ": " + "xc must be (B, E), A (E, N) and dt_weight (E, R), got " + xc.shape().str() + ", " +
              A.shape().str() + " and " + dt_w.shape().str() + ".");
  const int64_t B = xc.size(0), E = xc.size(1), N = A.size(1), R = dt_w.size(1), S = R + 2 * N;
  if (!(A.size(0) == E && dt_w.size(0) == E && dt_b.shape() == Shape{E} && D.shape() == Shape{E} &&
              x_proj_w.shape() == Shape{S, E} && xz.shape() == Shape{B, 2 * E} && h.shape() == Shape{B, E, N}))
    throw Error(std::string(op) + ": " + "shapes do not match: xc " + xc.shape().str() + ", x_proj weight " +
              x_proj_w.shape().str() + ", dt_weight " + dt_w.shape().str() + ", A " + A.shape().str() + ", xz " +
              xz.shape().str() + ", h " + h.shape().str() + ".");
  if (B < 1 || B > kDecodeGemvRows)
    throw Error(std::string(op) + ": takes 1 to " + std::to_string(kDecodeGemvRows) + " rows, got " +
                std::to_string(B) + ".");
  detail::require_int_sizes({B * E * N, B * 2 * E, E * R, S * E}, op, op);
  Context& ctx = xc.ctx();
  // x_proj by decode_gemv first, then the step. The kernel can also compute x_proj itself in
  // every group (one launch less), but that is slower everywhere measured: on the H100 at phase1's
  // sizes (E 896, 60 x_proj rows) the step took 124 µs per call that way, against a launch of a
  // few µs; on PoCL 9.5 ms against 1.6 ms per token. MAGELLANO_DECODE_XPROJ_IN_STEP=1 selects it
  // (for measurements on other devices).
  const char* env = std::getenv("MAGELLANO_DECODE_XPROJ_IN_STEP");
  const bool in_step = env && std::string(env) == "1";
  const Tensor dbc = in_step ? xc : decode_gemv(xc, x_proj_w);
  Tensor y = Tensor::empty(ctx, Shape{B, E});
  const int64_t lwg = 64, blocks = (E + lwg - 1) / lwg;
  Launch(ctx, "mamba_decode", op, BuildOptions().define("DSTATE", N).define("SDIM", S).define("LWG", lwg))
      .arg(xc).arg(dbc).arg(x_proj_w).arg(dt_w).arg(dt_b).arg(A).arg(D).arg(xz).arg(h).arg(y).arg(E).arg(in_step)
      .run(B * blocks * lwg, lwg);
  return y;
}

}  // namespace magellano::ops
