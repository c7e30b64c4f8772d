// A checkpoint folder as `train --resume DIR` reads it before touching a device: config.json and
// trainer_state.json, separated by a NUL byte in the input, written into a folder; then the
// config (train::load_config, as cmd_train does for --resume) and the trainer state
// (train::read_trainer_state, as TrainingRun::restore and load_training_state do).
#include "fuzz_support.hpp"
#include "magellano/train/config.hpp"
#include "magellano/train/trainer_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split(data, size, 2);
  const auto config = fuzz::write_file("config.json", parts[0]);
  fuzz::write_file("trainer_state.json", parts[1]);
  fuzz::clear_errors_only([&] { magellano::train::load_config(config.string()); });
  fuzz::clear_errors_only([&] { magellano::train::read_trainer_state(fuzz::scratch_dir()); });
  return 0;
}
