#include "harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "magellano/runtime/device.hpp"

namespace mgtest {

namespace {
std::shared_ptr<Context>& the_test_ctx() {
  static std::shared_ptr<Context> ctx;
  return ctx;
}

// PoCL generates a kernel's device code on its own thread when the kernel first runs, so a test
// may end with that still going. Were the context left to the exit handlers, they would destroy
// LLVM's static state under that thread first (a segfault after the tests passed). So when the
// tests are done, and before exit, the device finishes its work and the context is released.
class ReleaseTestDevice : public ::testing::Environment {
 public:
  void TearDown() override {
    if (auto& ctx = the_test_ctx()) {
      ctx->finish();
      ctx.reset();
    }
  }
};
[[maybe_unused]] ::testing::Environment* const release_test_device =
    ::testing::AddGlobalTestEnvironment(new ReleaseTestDevice);
}  // namespace

Context& test_ctx() {
  auto& ctx = the_test_ctx();
  if (!ctx) {
    std::string spec;
    if (const char* e = std::getenv("MAGELLANO_TEST_DEVICE"); e && *e) spec = e;
    else {
      for (const auto& d : magellano::list_devices())
        if (d.is_pocl()) spec = d.id();
    }
    ctx = Context::create(spec);
    ctx->set_poison_allocations(true);
    ctx->set_check_kernel_args(true);
  }
  return *ctx;
}

magellano::ops::KernelMapping other_mapping() {
  using magellano::ops::KernelMapping;
  return magellano::ops::kernel_mapping(test_ctx()) == KernelMapping::cpu ? KernelMapping::gpu
                                                                          : KernelMapping::cpu;
}

Vec randn(size_t n, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(d(rng));  // exactly representable in f32
  return v;
}

Vec uniform(size_t n, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(d(rng));
  return v;
}

std::vector<float> to_f32(const Vec& v) { return {v.begin(), v.end()}; }
Vec to_f64(const std::vector<float>& v) { return {v.begin(), v.end()}; }

Tensor upload(const Shape& s, const Vec& v, bool requires_grad) {
  Tensor t = Tensor::from_host(test_ctx(), s, to_f32(v));
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor upload_i32(const Shape& s, const std::vector<int32_t>& v) {
  return Tensor::from_host_i32(test_ctx(), s, v);
}

Tensor upload_input(const Input& in) {
  if (in.dtype == DType::i32) return upload_i32(in.shape, std::vector<int32_t>(in.values.begin(), in.values.end()));
  Tensor t = Tensor::from_host(test_ctx(), in.shape, to_f32(in.values), in.dtype);
  if (in.differentiable) t.set_requires_grad(true);
  return t;
}

void expect_close(const Vec& got, const Vec& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what << ": sizes differ";
  size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(got[i] - want[i]), lim = atol + rtol * std::fabs(want[i]);
    if (!(err <= lim)) {  // NaN-safe
      ++bad;
      double excess = std::isnan(err) ? INFINITY : err / lim;
      if (excess > worst_excess) worst_excess = excess, worst = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size()
                     << " elements out of tolerance (rtol " << rtol << ", atol " << atol
                     << "); worst at [" << worst << "]: got " << (bad ? got[worst] : 0)
                     << ", want " << (bad ? want[worst] : 0);
}

void expect_close(const std::vector<float>& got, const Vec& want, double rtol, double atol,
                  const std::string& what) {
  expect_close(to_f64(got), want, rtol, atol, what);
}

Vec finite_diff(const std::function<double(const Vec&)>& f, Vec x, const std::vector<size_t>& at,
                double h) {
  Vec g(at.size());
  for (size_t j = 0; j < at.size(); ++j) {
    const size_t i = at[j];
    const double xi = x[i], step = h * std::max(1.0, std::fabs(xi));
    x[i] = xi + step;
    const double fp = f(x);
    x[i] = xi - step;
    const double fm = f(x);
    x[i] = xi;
    g[j] = (fp - fm) / (2 * step);
  }
  return g;
}

void check_op(const std::string& name, const std::vector<Input>& inputs, const DeviceOp& op,
              const RefForward& ref, const RefBackward& ref_grad, const Tolerance& tol) {
  SCOPED_TRACE(name);
  std::vector<Vec> ins;
  for (const auto& in : inputs) {
    ASSERT_EQ(static_cast<int64_t>(in.values.size()), in.shape.numel()) << name;
    ins.push_back(in.values);
  }
  const Vec want = ref(ins);
  const Vec dout = randn(want.size(), 0xD0 + want.size());

  // 1. The reference's gradients against finite differences of sum(ref(x) * dout).
  const std::vector<Vec> want_grads = ref_grad(ins, dout);
  ASSERT_EQ(want_grads.size(), inputs.size()) << name << ": reference returned wrong grad count";
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].differentiable || inputs[k].dtype != DType::f32) continue;
    auto loss = [&](const Vec& xk) {
      std::vector<Vec> v = ins;
      v[k] = xk;
      const Vec y = ref(v);
      double s = 0;
      for (size_t i = 0; i < y.size(); ++i) s += y[i] * dout[i];
      return s;
    };
    // Every coordinate of small inputs; an even spread of 97 (first and last included) of big ones.
    std::vector<size_t> at;
    const size_t n = ins[k].size(), m = std::min<size_t>(n, 97);
    for (size_t j = 0; j < m; ++j) at.push_back(m == 1 ? 0 : j * (n - 1) / (m - 1));
    Vec sampled;
    for (size_t i : at) sampled.push_back(want_grads[k][i]);
    expect_close(sampled, finite_diff(loss, ins[k], at), tol.fd_rtol, tol.fd_atol,
                 name + ": reference gradient of input " + std::to_string(k) +
                     " vs finite differences");
  }

  // 2. The device op, forward and backward, twice (the second backward accumulates).
  std::vector<Tensor> dev;
  for (const auto& in : inputs) dev.push_back(upload_input(in));
  for (int round = 1; round <= 2; ++round) {
    Tensor out = op(dev);
    ASSERT_EQ(out.numel(), static_cast<int64_t>(want.size())) << name << ": output size";
    if (round == 1) expect_close(out.to_host(), want, tol.fwd_rtol, tol.fwd_atol, name + ": forward");
    bool any_grad = false;
    for (const auto& in : inputs) any_grad |= in.differentiable && in.dtype == DType::f32;
    if (!any_grad) break;
    magellano::autograd::backward(out, upload(out.shape(), dout));
    for (size_t k = 0; k < inputs.size(); ++k) {
      if (!inputs[k].differentiable || inputs[k].dtype != DType::f32) continue;
      Tensor g = dev[k].grad();
      ASSERT_TRUE(g.defined()) << name << ": input " << k << " received no gradient";
      Vec w = want_grads[k];
      for (auto& x : w) x *= round;
      expect_close(g.to_host(), w, tol.grad_rtol, tol.grad_atol,
                   name + ": gradient of input " + std::to_string(k) +
                       (round == 2 ? " after a second, accumulating backward" : ""));
    }
  }
  EXPECT_EQ(magellano::autograd::tape_size(), 0u) << name << ": backward left nodes on the tape";
}

}  // namespace mgtest
