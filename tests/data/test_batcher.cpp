// Batcher: window layout, determinism, epoch coverage, resume equality, too-short files.
#include <gtest/gtest.h>

#include <numeric>
#include <set>

#include "magellano/data/batcher.hpp"
#include "magellano/runtime/error.hpp"
#include "shared_data.hpp"

using namespace magellano::data;
using mgdata::TempDir;

namespace {

// A token file whose id at position i is i % 1000 (vocab 1000), so windows are recognisable.
std::filesystem::path make_counting_file(const TempDir& dir, size_t n) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<uint32_t>(i % 1000);
  write_token_file(dir / "count.tok", 1000, ids);
  return dir / "count.tok";
}

}  // namespace

TEST(Batcher, WindowsAreContiguousAndCoverEachEpochOnce) {
  TempDir dir;
  const size_t n = 1 + 8 * 37, L = 8;  // exactly 37 windows
  Batcher b(TokenFile::open(make_counting_file(dir, n)), 5, L, 123);
  ASSERT_EQ(b.windows_per_epoch(), 37u);
  std::multiset<int32_t> starts;
  for (int step = 0; step * 5 < 37; ++step) {
    const auto batch = b.next();
    ASSERT_EQ(batch.size(), 5 * (L + 1));
    for (size_t r = 0; r < 5; ++r) {
      const int32_t first = batch[r * (L + 1)];
      for (size_t c = 1; c <= L; ++c) ASSERT_EQ(batch[r * (L + 1) + c], (first + c) % 1000);
      if (starts.size() < 37) starts.insert(first);
    }
  }
  std::multiset<int32_t> want;
  for (size_t k = 0; k < 37; ++k) want.insert(static_cast<int32_t>(k * L));
  EXPECT_EQ(starts, want);  // every window once in epoch 0
  EXPECT_EQ(b.state().epoch, 1u);
  EXPECT_NEAR(b.epochs(), 1.0 + 3.0 / 37.0, 1e-12);  // 40 windows drawn
}

TEST(Batcher, SameSeedSameBatchesOtherSeedOthers) {
  TempDir dir;
  const auto path = make_counting_file(dir, 5000);
  Batcher a(TokenFile::open(path), 4, 16, 7), b(TokenFile::open(path), 4, 16, 7),
      c(TokenFile::open(path), 4, 16, 8);
  bool differs = false;
  for (int i = 0; i < 200; ++i) {  // crosses several epochs (312 windows)
    const auto x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
}

TEST(Batcher, ResumeFromJsonStateIsBitExact) {
  TempDir dir;
  const auto path = make_counting_file(dir, 3001);
  Batcher a(TokenFile::open(path), 3, 10, 99);
  for (int i = 0; i < 250; ++i) a.next();  // 750 windows: into the third epoch of 300
  const nlohmann::json saved = to_json(a.state());
  EXPECT_EQ(saved["epoch"], 2);
  Batcher resumed(TokenFile::open(path), 3, 10, 0);
  resumed.restore(batcher_state_from_json(nlohmann::json::parse(saved.dump())));
  EXPECT_EQ(resumed.state(), a.state());
  for (int i = 0; i < 150; ++i) ASSERT_EQ(a.next(), resumed.next()) << "batch " << i;
  nlohmann::json garbled = saved;
  garbled["position"] = -1;
  EXPECT_THROW(batcher_state_from_json(garbled), magellano::Error);
  BatcherState past = a.state();
  past.position = 301;
  EXPECT_THROW(resumed.restore(past), magellano::Error);
}

TEST(Batcher, TooShortFileIsAClearError) {
  TempDir dir;
  const auto path = make_counting_file(dir, 16);
  try {
    Batcher b(TokenFile::open(path), 2, 16, 1);
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one window"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Batcher(TokenFile::open(path), 2, 15, 1));
}

TEST(Batcher, WorksOnRawU16) {
  MG_REQUIRE_SHARED_DATA();
  Batcher b(TokenFile::open(mgdata::shared_data() / "tokenizer_tests" / "tinyshakespeare.gpt2.u16",
                           50257),
            8, 256, 1);
  EXPECT_EQ(b.windows_per_epoch(), (338025u - 1) / 256);
  for (int32_t id : b.next()) ASSERT_LT(id, 50257);
}
