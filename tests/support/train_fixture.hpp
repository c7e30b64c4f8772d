// A tiny training setup for process-level tests of `magellano train`: token files over a
// 64-id vocabulary and a config (model "ME", dim 16, 4 steps of 2 x 16 tokens, a checkpoint
// every 2 steps, the newest 3 kept, into <dir>/run), in a folder of the test's.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "cli.hpp"

namespace mgtest {

struct TrainFixture {
  explicit TrainFixture(const std::filesystem::path& dir);
  std::filesystem::path dir, config, run;  // run: the config's checkpoint.dir

  // `magellano train --config <config> <args>` on the tests' device (stderr apart).
  CliRun train(const std::vector<std::string>& args = {}) const;
};

// `magellano <args>` on the tests' device (stderr apart).
CliRun run_on_device(const std::vector<std::string>& args);

// Rewrites the safetensors `file` with element `index` of the F32 tensor `name` set to `value`
// (a damaged checkpoint), or with an empty `name` every element of every F32 tensor.
void set_weight_values(const std::filesystem::path& file, const std::string& name, float value, size_t index = 0);

}  // namespace mgtest
