// The Embedding module (nn/): its initialisation (N(0, 0.02) as upstream), its parameter name,
// and that its forward looks rows up.
#include <cmath>

#include "harness.hpp"
#include "magellano/nn/embedding.hpp"

using namespace mgtest;

TEST(Embedding, InitAndName) {
  magellano::nn::Init init(5);
  magellano::nn::Embedding emb(test_ctx(), 1000, 64, init);
  const auto w = emb.weight.to_host();
  double sum = 0, sq = 0;
  for (float v : w) sum += v, sq += double(v) * v;
  const double mean = sum / w.size(), sd = std::sqrt(sq / w.size() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.001);  // 64,000 draws: the sample mean's sd is 0.02/253
  EXPECT_NEAR(sd, 0.02, 0.0005);
  EXPECT_EQ(emb.parameters("backbone.embeddings.")[0].name, "backbone.embeddings.weight");
  Tensor ids = Tensor::from_host_i32(test_ctx(), Shape{2, 3}, {0, 999, 5, 5, 1, 0});
  Tensor out = emb.forward(ids);
  EXPECT_EQ(out.shape(), (Shape{2, 3, 64}));
  const auto o = out.to_host();
  for (int j = 0; j < 64; ++j) EXPECT_EQ(o[64 + j], w[999 * 64 + j]);
}
