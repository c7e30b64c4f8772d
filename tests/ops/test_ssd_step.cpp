// Mamba2 decoding: ops::ssd_step against the float64 step, stepping it through a sequence against
// the chunked ops::ssd_scan (outputs and final state), and the existing causal conv step at
// Mamba2's channel count (x, B and C convolved together: H·P + 2·G·N channels). The step is a
// registered op for its perf case only (it updates its state in place, which check_op cannot
// compare): 8 sequences decoding at test_ssd.cpp's perf shape (H 16, P 64, G 1, N 64).
// Tolerances: one step is N products per output in fp32: rtol 1e-5, atol 1e-6 against float64.
// Steps against the chunked scan: two different fp32 summation orders of the same math (the
// scan's decays come from cumulative sums, see test_ssd.cpp): rtol 1e-4, atol 1e-5.
#include <cmath>

#include "magellano/ops/conv1d.hpp"
#include "magellano/ops/ssd.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// (B, L, W) -> (B, W) at step t.
Vec at_step(const Vec& v, int64_t b, int64_t l, int64_t width, int64_t t) {
  Vec r;
  for (int64_t i = 0; i < b; ++i) r.insert(r.end(), v.begin() + (i * l + t) * width, v.begin() + (i * l + t + 1) * width);
  return r;
}

// One step for B sequences. It reads and writes the state (B, H, P, N) and reads x_t (B, H, P),
// dt_t (B, H), B_t and C_t (B, G, N), writes y_t (B, H, P): 4 (2 B H P N + 2 B H P + B H + 2 B G N)
// bytes; 5 P N FLOPs per (b, head), as `bench ssd`'s host loop counts them (decay·S + (dt·x)·B,
// then S·C). No backward.
CaseSpec ssd_step_case(int64_t b, int64_t h, int64_t p, int64_t g, int64_t n) {
  const std::string name = "ssd_step B" + std::to_string(b) + " H" + std::to_string(h) + " P" + std::to_string(p) +
                           " G" + std::to_string(g) + " N" + std::to_string(n);
  return {name, [=] {
            OpCase c;
            c.inputs = {{Shape{b, h, p}, randn(b * h * p, 1), false},
                        {Shape{b, h}, randn(b * h, 2, 0.8), false},
                        {Shape{h}, uniform(h, 3, -1, 0), false},
                        {Shape{h}, uniform(h, 4, -1, 1), false},
                        {Shape{b, g, n}, randn(b * g * n, 5, 0.5), false},
                        {Shape{b, g, n}, randn(b * g * n, 6, 0.5), false},
                        {Shape{h}, uniform(h, 7, 0.5, 1.5), false},
                        {Shape{b, h, p, n}, randn(b * h * p * n, 8), false}};  // the state, updated in place
            c.device = [](const std::vector<Tensor>& t) {
              return ops::ssd_step(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
            };
            c.sizes = {{"B", b}, {"H", h}, {"P", p}, {"G", g}, {"N", n}};
            const double bhpn = double(b) * h * p * n, bhp = double(b) * h * p;
            c.cost = {4 * (2 * bhpn + 2 * bhp + double(b) * h + 2.0 * b * g * n), 5 * bhpn, 0, 0};
            return c;
          }};
}

const RegisterOp reg{{"ssd_step", {}, ssd_step_case(8, 16, 64, 1, 64)}};

}  // namespace

TEST(SsdStep, MatchesTheFloat64StepWithClampAndWithoutD) {
  for (bool has_D : {true, false}) {
    ref::SsdDims d{3, 1, 6, 5, 2, 7};
    d.has_D = has_D;
    d.lo = 0.2, d.hi = 0.9;
    std::vector<Vec> in{randn(d.b * d.h * d.p, 1), randn(d.b * d.h, 2), uniform(d.h, 3, -1, 0.5),
                        uniform(d.h, 4, -1, 1), randn(d.b * d.g * d.n, 5), randn(d.b * d.g * d.n, 6),
                        uniform(d.h, 7, 0.5, 1.5)};
    Vec state = randn(d.b * d.h * d.p * d.n, 8);
    Tensor st = upload(Shape{d.b, d.h, d.p, d.n}, state);
    Tensor y = ops::ssd_step(upload(Shape{d.b, d.h, d.p}, in[0]), upload(Shape{d.b, d.h}, in[1]),
                             upload(Shape{d.h}, in[2]), upload(Shape{d.h}, in[3]),
                             upload(Shape{d.b, d.g, d.n}, in[4]), upload(Shape{d.b, d.g, d.n}, in[5]),
                             has_D ? upload(Shape{d.h}, in[6]) : Tensor(), st, {true, 0.2f, 0.9f});
    const Vec want = ref::ssd_step(d, in, state);
    expect_close(y.to_host(), want, 1e-5, 1e-6, has_D ? "y_t" : "y_t without D");
    expect_close(st.to_host(), state, 1e-5, 1e-6, "state after the step");
  }
}

TEST(SsdStep, StepsReproduceTheChunkedScanAndItsFinalState) {
  for (auto m : {ops::SsdMapping::item_per_chunk, ops::SsdMapping::group_per_chunk}) {
    const int64_t b = 2, l = 40, h = 4, p = 8, g = 2, n = 16;
    const Vec x = randn(b * l * h * p, 11), dt = randn(b * l * h, 12, 0.8), bias = uniform(h, 13, -1, 0);
    const Vec A_log = uniform(h, 14, -1, 1), Bm = randn(b * l * g * n, 15, 0.5), Cm = randn(b * l * g * n, 16, 0.5);
    const Vec D = uniform(h, 17, 0.5, 1.5);
    const Tensor tb = upload(Shape{h}, bias), ta = upload(Shape{h}, A_log), td = upload(Shape{h}, D);
    Tensor last;
    const Tensor y = ops::ssd_scan(upload(Shape{b, l, h, p}, x), upload(Shape{b, l, h}, dt), tb, ta,
                                   upload(Shape{b, l, g, n}, Bm), upload(Shape{b, l, g, n}, Cm), td,
                                   {.chunk = 16, .mapping = m}, &last);
    const Vec y_scan = to_f64(y.to_host());
    Tensor state = Tensor::zeros(test_ctx(), Shape{b, h, p, n});
    for (int64_t t = 0; t < l; ++t) {
      const Tensor yt = ops::ssd_step(upload(Shape{b, h, p}, at_step(x, b, l, h * p, t)),
                                      upload(Shape{b, h}, at_step(dt, b, l, h, t)), tb, ta,
                                      upload(Shape{b, g, n}, at_step(Bm, b, l, g * n, t)),
                                      upload(Shape{b, g, n}, at_step(Cm, b, l, g * n, t)), td, state);
      expect_close(yt.to_host(), at_step(y_scan, b, l, h * p, t), 1e-4, 1e-5, "step " + std::to_string(t));
    }
    expect_close(state.to_host(), to_f64(last.to_host()), 1e-4, 1e-5, "state after the last step");
  }
}

// Mamba2 convolves [x | B | C] (H·P + 2·G·N channels) with one causal depthwise conv; decoding
// steps it with the conv state of Mamba1 (ops::causal_conv1d_step), which must agree with the
// parallel conv at that odd channel count, and the state a prompt leaves must continue it.
TEST(SsdStep, ConvStepAtMamba2ChannelCount) {
  const int64_t h = 3, p = 5, g = 1, n = 7, c = h * p + 2 * g * n, b = 2, l = 9, prompt = 4;
  for (int64_t w : {4, 3}) {
    const Vec xs = randn(b * l * c, 21), wt = randn(c * w, 22, 0.5), bias = randn(c, 23, 0.1);
    const Tensor weight = upload(Shape{c, w}, wt), tb = upload(Shape{c}, bias);
    const Vec full = to_f64(ops::causal_conv1d(upload(Shape{b, l, c}, xs), weight, tb).to_host());
    Vec head;  // the prompt's first `prompt` steps, (B, prompt, C)
    for (int64_t i = 0; i < b; ++i)
      head.insert(head.end(), xs.begin() + i * l * c, xs.begin() + (i * l + prompt) * c);
    const Tensor state = ops::causal_conv1d_state(upload(Shape{b, prompt, c}, head), w);
    for (int64_t t = prompt; t < l; ++t) {
      const Tensor yt = ops::causal_conv1d_step(upload(Shape{b, c}, at_step(xs, b, l, c, t)), weight, tb, state);
      expect_close(yt.to_host(), at_step(full, b, l, c, t), 1e-5, 1e-6,
                   "width " + std::to_string(w) + " step " + std::to_string(t));
    }
  }
}

TEST(SsdStep, BadShapesAreOneClearError) {
  const Tensor x = upload(Shape{1, 4, 2}, randn(8, 1)), dt = upload(Shape{1, 4}, randn(4, 2));
  const Tensor hv = upload(Shape{4}, randn(4, 3)), bc = upload(Shape{1, 2, 3}, randn(6, 4));
  const Tensor bc3 = upload(Shape{1, 3, 3}, randn(9, 5));
  const Tensor state = Tensor::zeros(test_ctx(), Shape{1, 4, 2, 3}), bad_state = Tensor::zeros(test_ctx(), Shape{1, 4, 3, 2});
  EXPECT_NO_THROW(ops::ssd_step(x, dt, hv, hv, bc, bc, hv, state));
  try {
    ops::ssd_step(x, dt, hv, hv, bc, bc, hv, bad_state);
    FAIL() << "no error for a transposed state";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("state (1, 4, 3, 2) (B, H, P, N)"), std::string::npos) << e.what();
  }
  try {
    ops::ssd_step(x, dt, hv, hv, bc3, bc3, hv, state);
    FAIL() << "no error for 3 groups of 4 heads";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("must divide H"), std::string::npos) << e.what();
  }
}
