// The dynamic loss scaler (fp16 training): its state machine (double after N clean steps, halve
// and skip on Inf/NaN), and an injected Inf or NaN gradient skipping the optimizer step.
#include <cmath>

#include "harness.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/train/loss_scaler.hpp"

using namespace mgtest;
namespace ops = magellano::ops;
namespace ag = magellano::autograd;

TEST(LossScaler, StateMachine) {
  magellano::train::LossScaler s(65536.0, 3);
  EXPECT_EQ(s.scale(), 65536.0f);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 65536.0f);
  EXPECT_TRUE(s.update(true));  // third clean step in a row: doubles
  EXPECT_EQ(s.scale(), 131072.0f);
  EXPECT_EQ(s.clean_steps(), 0);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_FALSE(s.update(false));  // Inf: skip, halve, the count restarts
  EXPECT_EQ(s.scale(), 65536.0f);
  EXPECT_EQ(s.clean_steps(), 0);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 65536.0f);  // only 2 clean since the skip
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 131072.0f);
  magellano::train::LossScaler d;  // the defaults of the issue
  EXPECT_EQ(d.scale(), 65536.0f);
  for (int i = 0; i < 1999; ++i) d.update(true);
  EXPECT_EQ(d.scale(), 65536.0f);
  d.update(true);
  EXPECT_EQ(d.scale(), 131072.0f);
}

TEST(LossScaler, InjectedInfSkipsTheStep) {
  Tensor w = Tensor::from_host(test_ctx(), Shape{5, 3}, to_f32(randn(15, 1)), DType::f32, magellano::MemCategory::parameters);
  w.set_requires_grad(true);
  magellano::optim::AdamW opt(test_ctx(), {{"w", w, true}});
  magellano::train::LossScaler scaler(1024.0, 2000);
  auto step_with = [&](float poison) {
    opt.zero_grad();
    Tensor loss = ops::sum(ops::mul(w, w));
    ag::backward(loss, Tensor::full(test_ctx(), loss.shape(), scaler.scale()));
    if (poison != 0.0f) {  // one gradient element becomes Inf (or NaN)
      std::vector<float> g = w.grad().to_host();
      g[7] = poison;
      w.grad().copy_from_host(g.data(), g.size() * 4);
    }
    const auto before = w.to_host();
    const bool apply = scaler.update(magellano::train::grads_finite(opt));
    if (apply) {
      opt.scale_grads(1.0f / 1024.0f);
      opt.step(1e-2f);
    }
    return std::make_pair(apply, before != w.to_host());
  };
  auto [applied_inf, changed_inf] = step_with(INFINITY);
  EXPECT_FALSE(applied_inf);
  EXPECT_FALSE(changed_inf);
  EXPECT_EQ(scaler.scale(), 512.0f);
  auto [applied_nan, changed_nan] = step_with(NAN);
  EXPECT_FALSE(applied_nan);
  EXPECT_FALSE(changed_nan);
  EXPECT_EQ(scaler.scale(), 256.0f);
  auto [applied, changed] = step_with(0.0f);
  EXPECT_TRUE(applied);
  EXPECT_TRUE(changed);
  EXPECT_EQ(scaler.clean_steps(), 1);
}
