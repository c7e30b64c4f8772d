// magellano demo: a small end-to-end check of the op set and autograd on a device. A student
// MLP y = W2·silu(W1·x + b1) + b2 learns to imitate a fixed random teacher of the same shape
// by plain gradient descent; the loss must fall.
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <random>

#include "command.hpp"
#include "options.hpp"
#include "magellano/ops/activation.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/runtime/error.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

struct Mlp {
  Tensor w1, b1, w2, b2;  // w1: (H, D), b1: (H), w2: (D, H), b2: (D)
  Tensor forward(const Tensor& x) const {  // x: (N, D) -> (N, D)
    return ops::linear(ops::silu(ops::linear(x, w1, b1)), w2, b2);
  }
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
};

Tensor random_tensor(Context& ctx, const Shape& s, float scale, std::mt19937& rng,
                     MemCategory cat = MemCategory::parameters) {
  Tensor t = Tensor::empty(ctx, s, DType::f32, cat);  // the device's limits are checked first
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(s.numel());
  for (auto& x : v) x = d(rng);
  t.copy_from_host(v.data(), v.size() * sizeof(float));
  return t;
}

Mlp make_mlp(Context& ctx, int64_t d, int64_t h, std::mt19937& rng, bool trainable) {
  Mlp m{random_tensor(ctx, Shape{h, d}, 1.0f / std::sqrt(float(d)), rng),
        random_tensor(ctx, Shape{h}, 0.1f, rng),
        random_tensor(ctx, Shape{d, h}, 1.0f / std::sqrt(float(h)), rng),
        random_tensor(ctx, Shape{d}, 0.1f, rng)};
  if (trainable)
    for (auto& p : m.params()) p.set_requires_grad(true);
  return m;
}

int run_demo(int argc, char** argv) {
  po::options_description opts("magellano demo: train a small MLP on the device (ops + autograd check)");
  int steps = 200, batch = 256, width = 64, hidden = 256;
  float lr = 0.5f;
  cli::add_common_options(opts, cli::kDevice);
  constexpr int64_t kMax = INT32_MAX;  // sizes too large for the device fail at the allocation
  cli::add_integer_option(opts, "steps", &steps, 1, kMax, "gradient steps");
  cli::add_integer_option(opts, "batch", &batch, 1, kMax, "examples per step");
  cli::add_integer_option(opts, "width", &width, 1, kMax, "input/output width D");
  cli::add_integer_option(opts, "hidden", &hidden, 1, kMax, "hidden width H");
  cli::add_number_option(opts, "lr", &lr, {0, INFINITY, true}, "learning rate");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  auto ctx = Context::create(cli::device_option(vm));
  std::cout << "device: " << ctx->device().name << " [" << ctx->device().platform_name << "]\n";
  std::mt19937 rng(1234);
  const Mlp teacher = make_mlp(*ctx, width, hidden, rng, false);
  Mlp student = make_mlp(*ctx, width, hidden, rng, true);
  const auto t0 = std::chrono::steady_clock::now();
  float first = 0, last = 0;
  for (int step = 1; step <= steps; ++step) {
    Tensor x = random_tensor(*ctx, Shape{batch, width}, 1.0f, rng, MemCategory::activations);
    Tensor target;
    {
      autograd::NoGradScope no_grad;
      target = teacher.forward(x);
    }
    Tensor diff = ops::add(student.forward(x), target, -1.0f);
    Tensor loss = ops::mean(ops::mul(diff, diff));
    for (auto& p : student.params()) p.zero_grad();
    autograd::backward(loss);
    {
      autograd::NoGradScope no_grad;
      for (auto& p : student.params()) ops::scale_into(p.grad(), -lr, p, true);  // p -= lr * grad
    }
    if (step == 1 || step % 20 == 0 || step == steps) {
      last = loss.item();  // the only host read-back, once per logging interval
      if (step == 1) first = last;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %4d/%d  loss %.6f  %.1f steps/s\n", step, steps, last, step / s);
    }
  }
  const auto& mem = ctx->memory();
  std::printf("loss %.6f -> %.6f (%.1fx lower); peak device memory %s (parameters %s, gradients %s)\n",
              first, last, first / last, format_bytes(mem.peak_total()).c_str(),
              format_bytes(mem.peak(MemCategory::parameters)).c_str(),
              format_bytes(mem.peak(MemCategory::gradients)).c_str());
  if (!(last < first)) {
    std::cerr << "error: the loss did not fall; the device's results are wrong.\n";
    return 1;
  }
  return 0;
}

cli::RegisterCommand reg{{"demo", "Train a small MLP on the device (checks ops and autograd)", run_demo}};

}  // namespace
