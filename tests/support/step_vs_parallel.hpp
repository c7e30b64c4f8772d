// The decoding check of the Mamba and Mamba2 block tests. For x (B, L, D): every position stepped
// from an empty state, and the positions from `prompt` on stepped after a parallel prefill of the
// first `prompt`, equal the parallel forward within 1e-4 relative to the residual stream (fp32
// along two paths: the chunked parallel scan and the recurrence); after the whole sequence both
// states equal what the parallel forward leaves. Prints the largest difference.
// Block: forward(x, &state), step(x_t, state) and mixer.empty_state(B); State: its ssm and conv
// tensors. on_prefill sees the state after the prefill (e.g. to check its shapes).
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>

#include "harness.hpp"

namespace mgtest {

template <class Block, class State>
void expect_steps_match_parallel(Block& blk, const Vec& x, int64_t B, int64_t L, int64_t D, int64_t prompt,
                                 const std::function<void(const State&)>& on_prefill = {}) {
  magellano::autograd::NoGradScope no_grad;
  Tensor xt = upload(Shape{B, L, D}, x);
  const auto full = blk.forward(xt).to_host();
  State from_zero = blk.mixer.empty_state(B), prefilled;
  Vec prefix;
  for (int64_t b = 0; b < B; ++b)
    prefix.insert(prefix.end(), x.begin() + b * L * D, x.begin() + (b * L + prompt) * D);
  blk.forward(upload(Shape{B, prompt, D}, prefix), &prefilled);
  if (on_prefill) on_prefill(prefilled);
  double worst = 0;
  for (int64_t t = 0; t < L; ++t) {
    Vec xs;
    for (int64_t b = 0; b < B; ++b) xs.insert(xs.end(), x.begin() + (b * L + t) * D, x.begin() + (b * L + t + 1) * D);
    Tensor in = upload(Shape{B, D}, xs);
    const auto a = blk.step(in, from_zero).to_host();
    std::vector<float> p = t >= prompt ? blk.step(in, prefilled).to_host() : std::vector<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < D; ++j) {
        const double want = full[(b * L + t) * D + j];
        const double tol = 1e-4 * std::max(1.0, std::fabs(want));
        worst = std::max(worst, std::fabs(a[b * D + j] - want));
        ASSERT_NEAR(a[b * D + j], want, tol) << "step from zero, t=" << t;
        if (!p.empty()) ASSERT_NEAR(p[b * D + j], want, tol) << "step after prefill, t=" << t;
      }
  }
  State parallel;
  blk.forward(xt, &parallel);
  expect_close(from_zero.ssm.to_host(), to_f64(parallel.ssm.to_host()), 1e-4, 1e-5, "ssm state");
  expect_close(prefilled.ssm.to_host(), to_f64(parallel.ssm.to_host()), 1e-4, 1e-5, "ssm state after prefill");
  expect_close(from_zero.conv.to_host(), to_f64(parallel.conv.to_host()), 1e-5, 1e-6, "conv state");
  std::cout << "largest step-vs-parallel difference over " << L << " positions: " << worst << "\n";
}

}  // namespace mgtest
