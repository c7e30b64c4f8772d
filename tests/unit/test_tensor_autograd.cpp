// Tensors (dtypes, views, host transfers) and the tape's semantics: no-grad scopes, fan-out,
// accumulation across micro-batches until zero_grad, and release of saved tensors.
#include <functional>

#include "harness.hpp"
#include "magellano/ops/activation.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/reduce.hpp"

using namespace magellano;
using mgtest::test_ctx;
namespace ag = magellano::autograd;

TEST(Tensor, DtypesViewsAndTransfers) {
  auto& ctx = test_ctx();
  Tensor f = Tensor::from_host(ctx, Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(f.nbytes(), 24u);
  EXPECT_EQ(f.view(Shape{3, 2}).to_host(), f.to_host());
  EXPECT_THROW(f.view(Shape{4}), Error);
  Tensor row = f.narrow_rows(1, 2);
  EXPECT_EQ(row.offset(), 3u);
  EXPECT_EQ(row.to_host(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(row.buffer(), f.buffer());  // no copy
  Tensor i = Tensor::from_host_i32(ctx, Shape{4}, {-1, 0, 7, 1 << 30});
  EXPECT_EQ(i.to_host_i32(), (std::vector<int32_t>{-1, 0, 7, 1 << 30}));
  Tensor u = Tensor::from_host_u8(ctx, Shape{3}, {0, 128, 255});
  EXPECT_EQ(u.to_host_u8(), (std::vector<uint8_t>{0, 128, 255}));
  Tensor h = Tensor::from_host(ctx, Shape{3}, {0.5f, -2.0f, 65504.0f}, DType::f16);
  EXPECT_EQ(h.nbytes(), 6u);
  EXPECT_EQ(h.to_host(), (std::vector<float>{0.5f, -2.0f, 65504.0f}));  // exact in fp16
  EXPECT_THROW(Shape({1, 2, 3, 4, 5}), Error);
  EXPECT_THROW(f.item(), Error);
  EXPECT_EQ(Tensor::zeros(ctx, Shape{5}).to_host(), std::vector<float>(5, 0.0f));
  EXPECT_EQ(Tensor::full(ctx, Shape{2}, 3.5f).to_host(), std::vector<float>(2, 3.5f));
}

// An undefined Tensor (a gradient no backward reached) is one clear error where it is used.
TEST(Tensor, AnUndefinedTensorIsOneClearError) {
  const Tensor none;
  EXPECT_FALSE(none.defined());
  EXPECT_FALSE(none.requires_grad());
  for (const auto& use : std::vector<std::function<void()>>{
           [&] { (void)none.shape(); }, [&] { (void)none.numel(); }, [&] { (void)none.to_host(); },
           [&] { (void)none.grad(); }, [&] { (void)none.ctx(); }, [&] { (void)none.view(Shape{1}); }}) {
    try {
      use();
      ADD_FAILURE() << "no error";
    } catch (const magellano::Error& e) {
      EXPECT_NE(std::string(e.what()).find("an undefined (empty) Tensor was used"), std::string::npos) << e.what();
    }
  }
}

TEST(Autograd, NoGradScopeRecordsNothing) {
  Tensor x = mgtest::upload(Shape{4}, {1, 2, 3, 4}, true);
  const size_t before = ag::tape_size();
  {
    ag::NoGradScope ng;
    Tensor y = ops::silu(x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(ag::tape_size(), before);
  }
  Tensor y = ops::silu(x);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(ag::tape_size(), before + 1);
  ag::clear_tape();
}

TEST(Autograd, BackwardNeedsALossThatRequiresGrad) {
  Tensor x = mgtest::upload(Shape{2}, {1, 2});
  try {
    ag::backward(ops::sum(x));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set_requires_grad"), std::string::npos);
  }
}

TEST(Autograd, FanOutSumsAndMicroBatchesAccumulateUntilZeroed) {
  // loss = sum(x * x + 3x): dloss/dx = 2x + 3, with x used three times.
  Tensor x = mgtest::upload(Shape{3}, {1, -2, 0.5}, true);
  auto step = [&] { ag::backward(ops::sum(ops::add(ops::mul(x, x), x, 3.0f))); };
  step();
  EXPECT_EQ(x.grad().to_host(), (std::vector<float>{5, -1, 4}));
  step();  // a second micro-batch adds
  EXPECT_EQ(x.grad().to_host(), (std::vector<float>{10, -2, 8}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  step();  // after zero_grad the next backward overwrites
  EXPECT_EQ(x.grad().to_host(), (std::vector<float>{5, -1, 4}));
}

TEST(Autograd, SavedTensorsAndIntermediateGradsAreReleased) {
  auto ctx = Context::create(test_ctx().device());
  auto& mem = ctx->memory();
  Tensor w = Tensor::from_host(*ctx, Shape{64, 64}, std::vector<float>(64 * 64, 0.01f),
                               DType::f32, MemCategory::parameters);
  w.set_requires_grad(true);
  Tensor x = Tensor::from_host(*ctx, Shape{32, 64}, std::vector<float>(32 * 64, 1.0f));
  const uint64_t base = mem.current(MemCategory::activations);
  {
    Tensor loss = ops::mean(ops::silu(ops::linear(ops::silu(ops::linear(x, w)), w)));
    EXPECT_GT(mem.current(MemCategory::activations), base);  // saved activations are alive
    ag::backward(loss);
  }
  EXPECT_EQ(ag::tape_size(), 0u);
  // Only x itself is left among activations; w's gradient is tracked as a gradient.
  EXPECT_EQ(mem.current(MemCategory::activations), base);
  EXPECT_EQ(mem.current(MemCategory::gradients), 64u * 64 * 4);
  EXPECT_TRUE(w.grad().defined());
}

TEST(Autograd, ReshapeAndCastPassGradientsThrough) {
  Tensor x = mgtest::upload(Shape{2, 3}, {1, 2, 3, 4, 5, 6}, true);
  Tensor y = ops::cast(ops::cast(ops::reshape(x, Shape{3, 2}), DType::f16), DType::f32);
  ag::backward(ops::sum(ops::scale(y, 2.0f)));
  EXPECT_EQ(x.grad().to_host(), std::vector<float>(6, 2.0f));
}
