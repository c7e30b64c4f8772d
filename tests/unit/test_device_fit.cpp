// The up-front memory check (train/device_fit.hpp) on made-up devices: a run is refused exactly
// when what it allocates for certain exceeds the device's memory, or its largest tensor the
// largest allocation; the activation part of `info --config`'s estimate is the margin (a device
// between the certain part and the whole estimate accepts the run). Messages: one line, by how
// much, what to change.
#include <gtest/gtest.h>

#include "error_text.hpp"
#include "magellano/train/device_fit.hpp"
#include "magellano/train/model_size.hpp"

using namespace magellano;
using namespace magellano::train;
using mgtest::error_of;
using mgtest::has;

namespace {

Config tiny(int64_t batch, int64_t seq_len) {
  return Config::from_json({{"model", {{"vocab_size", 8192}, {"dim", 64}, {"layers", "(MMME)x2"},
                                       {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 192}}}}},
                            {"train", {{"batch_size", batch}, {"seq_len", seq_len}}}});
}

DeviceInfo device(double memory, double max_alloc, bool pocl = false) {
  DeviceInfo d;
  d.name = "Test Device";
  d.platform_name = pocl ? "Portable Computing Language" : "Test Platform";
  d.global_mem_bytes = static_cast<uint64_t>(memory);
  d.max_alloc_bytes = static_cast<uint64_t>(max_alloc);
  return d;
}

}  // namespace

TEST(DeviceFit, CertainPartsAreTheExactFiguresOfTheEstimate) {
  const Config c = tiny(8, 128);
  const MemoryEstimate e = estimate_memory(c);
  const DeviceDemand d = training_demand(c);
  ASSERT_EQ(d.parts.size(), 4u);
  EXPECT_EQ(d.parts[0].bytes, double(e.weights));
  EXPECT_EQ(d.parts[1].bytes, double(e.gradients));
  EXPECT_EQ(d.parts[2].bytes, double(e.optimizer_state));
  EXPECT_EQ(d.parts[3].bytes, 8.0 * 128 * 8192 * 4);  // the logits, one (B·L, V) f32 tensor
  EXPECT_EQ(d.estimate_total, double(e.total));
  EXPECT_LT(d.total(), d.estimate_total);  // the activations are the margin
}

TEST(DeviceFit, RefusedExactlyWhenTheCertainPartExceedsTheMemory) {
  const Config c = tiny(1, 8);
  const DeviceDemand d = training_demand(c);
  const double big = 1e15;
  EXPECT_EQ(error_of([&] { require_fit(d, device(d.total(), big), "train"); }), "(no error)");
  // Between the certain part and the whole estimate: accepted (it may well fit).
  EXPECT_EQ(error_of([&] { require_fit(d, device((d.total() + d.estimate_total) / 2, big), "train"); }), "(no error)");
  const std::string m = error_of([&] { require_fit(d, device(d.total() - 1024, big, true), "train"); });
  EXPECT_TRUE(has(m, "train: this needs at least ")) << m;
  EXPECT_TRUE(has(m, "1.0 KiB more than the device's")) << m;
  EXPECT_TRUE(has(m, "Use a smaller model")) << m;  // the weights' remedy: they dominate here
  // With a larger batch the logits outweigh weights, gradients and moments together.
  const DeviceDemand l = training_demand(tiny(8, 128));
  const std::string ml = error_of([&] { require_fit(l, device(l.total() - 1, big), "train"); });
  EXPECT_TRUE(has(ml, "Use a smaller train.batch_size or train.seq_len")) << ml;
  EXPECT_TRUE(has(m, "POCL_MEMORY_LIMIT=<GB>")) << m;
  EXPECT_FALSE(has(m, "\n")) << m;
}

TEST(DeviceFit, TheLargestTensorMustFitOneAllocation) {
  const Config c = tiny(64, 4096);  // logits 64·4096 x 8192 f32 = 8 GiB
  const DeviceDemand d = training_demand(c);
  EXPECT_EQ(d.largest.bytes, 64.0 * 4096 * 8192 * 4);
  EXPECT_EQ(error_of([&] { require_fit(d, device(1e15, d.largest.bytes), "train"); }), "(no error)");
  const std::string m = error_of([&] { require_fit(d, device(1e15, d.largest.bytes - 1), "train"); });
  EXPECT_TRUE(has(m, "train: the logits (B·L 262144 x V 8192, f32) takes 8.00 GiB in one buffer")) << m;
  EXPECT_TRUE(has(m, "Use a smaller train.batch_size or train.seq_len")) << m;
  // A small batch: the largest tensor is the embedding (V x D, at 4 bytes).
  EXPECT_EQ(training_demand(tiny(1, 8)).largest.bytes, 8192.0 * 64 * 4);
}

TEST(DeviceFit, InferenceCountsTheWeightsAndOneBatchOfLogits) {
  Config c = tiny(8, 128);
  const DeviceDemand w = inference_demand(c, 0, 0, "fewer");
  ASSERT_EQ(w.parts.size(), 1u);
  EXPECT_EQ(w.parts[0].bytes, double(estimate_memory(c).weights));
  const DeviceDemand b = inference_demand(c, 4, 1000, "Use a smaller --batch");
  EXPECT_EQ(b.total(), w.total() + 4.0 * 1000 * 8192 * 4);
  const std::string m = error_of([&] { require_fit(b, device(w.total() + 1, 1e15), "eval"); });
  EXPECT_TRUE(has(m, "eval: this needs at least")) << m;
  EXPECT_TRUE(has(m, "Use a smaller --batch.")) << m;
  // NF4 LoRA bases count at their stored size.
  c.lora.rank = 4;
  c.lora.base_precision = nn::WeightStorage::nf4;
  EXPECT_LT(inference_demand(c, 0, 0, "").total(), w.total());
}
