// `magellano quantize` as a real process: a weight too large for one allocation of the device
// is refused before anything is read or written (exit 1, one line, no output). The weight is a
// sparse file, so the test writes only its header.
#include <unistd.h>

#include <fstream>

#include "cli.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

TEST(QuantizeCli, AWeightLargerThanOneAllocationIsRefusedUpFront) {
  MG_REQUIRE_CLI();
  TempDir d;
  const int64_t cols = 1024, rows = int64_t(test_ctx().device().max_alloc_bytes / (4 * cols)) + 1;
  const int64_t bytes = rows * cols * 4;
  std::string header = R"({"layers.0.w.weight":{"dtype":"F32","shape":[)" + std::to_string(rows) + "," +
                       std::to_string(cols) + R"(],"data_offsets":[0,)" + std::to_string(bytes) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const fs::path in = d / "big.safetensors";
  {
    std::ofstream out(in, std::ios::binary);
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
    out << header;
  }
  fs::resize_file(in, 8 + header.size() + bytes);  // sparse: the data reads as zeros
  const auto r = run_on_device({"quantize", "--in", in.string(), "--out", (d / "out.safetensors").string()});
  EXPECT_TRUE(fails_with_one_line(r, 1, "quantize: tensor 'layers.0.w.weight' of " + in.string()));
  EXPECT_TRUE(fails_with_one_line(r, 1, "more than the largest allocation"));
  EXPECT_FALSE(fs::exists(d / "out.safetensors"));
}
