// trainer_state.json: what a Magellano checkpoint records about its run besides the weights and
// the optimizer's moments, read back by `train --resume` (and, for a LoRA checkpoint's base, by
// load_model). Written by save_checkpoint:
//   {"format": "magellano-checkpoint-1", "step": 120, "optimizer_steps": 120, "tokens": 61440,
//    "batcher": {"seed": 1234, "epoch": 0, "position": 960},
//    "loss_scaler": {"scale": 65536.0, "clean_steps": 120, "skipped_steps": 0},  (loss scaling on)
//    "init_from": "/abs/path/to/base",                                           (a run from other weights)
//    "run_id": "20261206-162947-4f3a",                                          (train/run_folder.hpp)
//    "data_parallel": {"ranks": 2, "batch_per_rank": 4}}                        (mpirun -np 2; the batcher
//        state is the stream all ranks share; rank r read rows [r·4, (r+1)·4) of each batch)
// Reading checks every field before anything is loaded: a missing field, a wrong type or a value
// out of range is one line naming the file and the field.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "magellano/data/batcher.hpp"

namespace magellano::train {

inline constexpr const char* kTrainerStateFormat = "magellano-checkpoint-1";

struct TrainerState {
  int64_t step = 0;             // optimizer steps of the run so far (>= 0)
  int64_t optimizer_steps = 0;  // AdamW's step count (>= 0; loss scaling's skipped steps not counted)
  int64_t tokens = 0;           // training tokens seen (>= 0; 0 when absent)
  data::BatcherState batcher;
  // {"scale" in [1, 1e30], "clean_steps" >= 0, "skipped_steps" >= 0} (LossScaler::restore), or null.
  nlohmann::json loss_scaler;
  std::optional<std::string> init_from;  // the weights the run started from
  std::string run_id;                    // the run that saved it (empty: saved before run ids)
  int64_t ranks = 1;                     // data-parallel ranks that wrote it (>= 1; "data_parallel")
};

// Validates a parsed trainer_state.json; `source` names it in errors (its path).
TrainerState parse_trainer_state(const nlohmann::json& j, const std::string& source);
// Reads and validates <checkpoint_dir>/trainer_state.json.
TrainerState read_trainer_state(const std::filesystem::path& checkpoint_dir);

}  // namespace magellano::train
