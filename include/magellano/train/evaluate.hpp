// Evaluation: the mean next-token cross-entropy of a model over a token sequence.
//
// The tokens are split into consecutive chunks of `seq_len` (the last may be shorter); each
// chunk is evaluated from a fresh state, predicting its tokens 1..len-1 from what precedes
// them in the chunk. The loss is the mean over all predicted positions; perplexity = exp(loss).
// Under prefix_lm (data/objective.hpp) each chunk gets its prefix as training would (a separator,
// or a fraction sampled with seed 0 and the chunk's index as its draw, so every evaluation of the
// same tokens uses the same prefixes) and only its suffix tokens are predicted and counted.
// Under blank_infilling (or a mix with it) each chunk is a training window: seq_len + 1 tokens
// starting every seq_len tokens (as data::Batcher's windows), so seq_len inputs, the shape the
// model was trained on (the layout of part A and B depends on it); it is transformed as in
// training (data::make_row, seed 0, the chunk's index as its draw) and only part B's targets are
// counted.
#pragma once
#include <cstdint>
#include <span>

#include "magellano/data/objective.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/collective.hpp"

namespace magellano::train {

struct EvalResult {
  double loss = 0;        // mean cross-entropy (nats) over predicted positions
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // predicted positions
};

// tokens: ids < the model's vocabulary. batch: chunks evaluated together. max_chunks: stop
// after that many chunks (0 = all). A sampled prefix (objective) is drawn by the chunk's index,
// counted from first_chunk (tokens' first chunk is chunk first_chunk of the whole text). No autograd.
EvalResult evaluate(const nn::Model& model, std::span<const int32_t> tokens, int64_t seq_len,
                    int64_t batch = 8, int64_t max_chunks = 0, const data::ObjectiveConfig& objective = {},
                    int64_t first_chunk = 0);

// The same chunks split across data-parallel ranks (collective): rank r evaluates the r-th of N
// contiguous shares of ceil(chunks / N) chunks, and the loss sums and counts are summed over
// ranks. Equal to evaluate() up to rounding (the same positions, other batches and sum order).
EvalResult evaluate(const nn::Model& model, std::span<const int32_t> tokens, int64_t seq_len, int64_t batch,
                    int64_t max_chunks, const data::ObjectiveConfig& objective, Collective& ranks);

}  // namespace magellano::train
