// The learning-rate schedule (optim/schedule.hpp): linear warmup to lr, then cosine decay to
// min_lr, flat after; without warmup it starts at lr.
#include <gtest/gtest.h>

#include <cmath>

#include "magellano/optim/schedule.hpp"

namespace optim = magellano::optim;

TEST(LrSchedule, Boundaries) {
  const optim::LrSchedule s{1e-3f, 1e-4f, 10, 110};
  EXPECT_FLOAT_EQ(s.at(0), 1e-4f);      // lr * 1 / 10
  EXPECT_FLOAT_EQ(s.at(4), 5e-4f);
  EXPECT_FLOAT_EQ(s.at(9), 1e-3f);      // end of warmup
  EXPECT_FLOAT_EQ(s.at(10), 1e-3f);     // cosine starts at lr
  EXPECT_FLOAT_EQ(s.at(60), 5.5e-4f);   // halfway: (lr + min_lr) / 2
  EXPECT_FLOAT_EQ(s.at(109), float(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(M_PI * 99 / 100))));
  EXPECT_FLOAT_EQ(s.at(110), 1e-4f);    // floor
  EXPECT_FLOAT_EQ(s.at(1000), 1e-4f);
  const optim::LrSchedule no_warmup{1e-3f, 0.0f, 0, 4};
  EXPECT_FLOAT_EQ(no_warmup.at(0), 1e-3f);
  EXPECT_FLOAT_EQ(no_warmup.at(2), 5e-4f);
  EXPECT_FLOAT_EQ(no_warmup.at(4), 0.0f);
  for (int64_t i = 1; i < 110; ++i)
    if (i >= 10) EXPECT_LE(s.at(i), s.at(i - 1));
}
