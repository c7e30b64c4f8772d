#include "magellano/ops/mamba_decode.hpp"

#include "check.hpp"
#include "magellano/ops/launch.hpp"

namespace magellano::ops {

Tensor mamba_ssm_step(const Tensor& xc, const Tensor& dbc, const Tensor& dt_w, const Tensor& dt_b,
                      const Tensor& A, const Tensor& D, const Tensor& xz, const Tensor& h) {
  const char* op = "mamba_ssm_step";
  for (const Tensor* t : {&xc, &dbc, &dt_w, &dt_b, &A, &D, &xz, &h}) detail::require_f32(*t, op, "every tensor");
  if (!(xc.shape().ndim() == 2 && A.shape().ndim() == 2 && dt_w.shape().ndim() == 2))
    throw Error(std::string(op) + ": " + "xc must be (B, E), A (E, N) and dt_weight (E, R), got " + xc.shape().str() + ", " +
              A.shape().str() + " and " + dt_w.shape().str() + ".");
  const int64_t B = xc.size(0), E = xc.size(1), N = A.size(1), R = dt_w.size(1);
  if (!(A.size(0) == E && dt_w.size(0) == E && dt_b.shape() == Shape{E} && D.shape() == Shape{E} &&
              dbc.shape() == Shape{B, R + 2 * N} && xz.shape() == Shape{B, 2 * E} && h.shape() == Shape{B, E, N}))
    throw Error(std::string(op) + ": " + "shapes do not match: xc " + xc.shape().str() + ", dbc " + dbc.shape().str() + ", dt_weight " +
              dt_w.shape().str() + ", A " + A.shape().str() + ", xz " + xz.shape().str() + ", h " +
              h.shape().str() + ".");
  detail::require_int_sizes({B * E * N, B * 2 * E, E * R}, op, op);
  Tensor y = Tensor::empty(xc.ctx(), Shape{B, E});
  Launch(xc.ctx(), "mamba_decode", op, BuildOptions().define("DSTATE", N))
      .arg(xc).arg(dbc).arg(dt_w).arg(dt_b).arg(A).arg(D).arg(xz).arg(h).arg(y).arg(B).arg(E).arg(R)
      .run(B * E, 64);
  return y;
}

}  // namespace magellano::ops
