#include "magellano/nn/training_mode.hpp"

namespace magellano::nn {
namespace {
thread_local bool g_training = false;
thread_local uint64_t g_generation = 0;
}  // namespace

bool training() { return g_training; }
TrainingScope::TrainingScope() : previous_(g_training) { g_training = true; }
TrainingScope::~TrainingScope() { g_training = previous_; }

uint64_t dropout_generation() { return g_generation; }
void advance_dropout_generation() { ++g_generation; }
GenerationScope::GenerationScope(uint64_t g) : previous_(g_generation) { g_generation = g; }
GenerationScope::~GenerationScope() { g_generation = previous_; }

}  // namespace magellano::nn
