// Training or evaluation mode, as dropout reads it: whether a forward runs inside a
// TrainingScope, and the generation counter that varies the dropout masks between forwards.
// Thread-local, so threads do not see each other's scopes.
#pragma once
#include <cstdint>

namespace magellano::nn {

// Dropout is active only inside a TrainingScope (the trainer's forward and backward).
bool training();
class TrainingScope {
 public:
  TrainingScope();
  ~TrainingScope();
  TrainingScope(const TrainingScope&) = delete;
  TrainingScope& operator=(const TrainingScope&) = delete;

 private:
  bool previous_;
};

// A counter mixed into every dropout seed; Model::forward advances it once per training
// forward, so each forward draws new masks while a checkpoint recompute (which sets it back
// with GenerationScope) draws the same ones.
uint64_t dropout_generation();
void advance_dropout_generation();
class GenerationScope {
 public:
  explicit GenerationScope(uint64_t generation);
  ~GenerationScope();
  GenerationScope(const GenerationScope&) = delete;
  GenerationScope& operator=(const GenerationScope&) = delete;

 private:
  uint64_t previous_;
};

}  // namespace magellano::nn
