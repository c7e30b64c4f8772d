// Blank infilling at generation time (a model trained with train.objective blank_infilling or a
// mix holding it; data/blank_infilling.hpp): part A is the input with one [MASK] per blank and is
// the bidirectional prefix; the blanks are filled left to right, blank j decoded after
//   A ++ [START] span_1 ++ ... ++ [START] span_(j-1) ++ [START]
// (as in training, an [END] is predicted but never an input) until the model emits [END] (or
// [START], [MASK], an end-of-text id: none of them is kept; or max_new_tokens tokens), greedy or
// sampled as the GenerationConfig says (max_new_tokens per blank). Each blank
// is one generate() call (the prompt is prefilled again: A ++ the spans so far).
#pragma once
#include <cstdint>
#include <vector>

#include "magellano/data/blank_infilling.hpp"
#include "magellano/generate/generator.hpp"

namespace magellano::generate {

struct Infill {
  std::vector<int32_t> part_a;              // the input, one [MASK] per blank
  std::vector<std::vector<int32_t>> spans;  // (blanks) each blank's ids, without [END]
  std::vector<FinishReason> finish;         // (blanks) eos: ended by one of those ids; length: cut at max_new_tokens
  std::vector<int32_t> filled;              // part A with each [MASK] replaced by its span
  std::string text;                         // filled's bytes (empty without token_bytes)
};

// part_a: ids < vocab holding at least one [MASK] (throws magellano::Error otherwise). config's
// prefix settings and stop strings are replaced; its eos_ids stop a blank too. A model with GLM's 2D
// positions (attention rope_2d) decodes each token by a full forward with the 2D ids (part A (t, 0),
// blank j's tokens (its [MASK]'s index, 1, 2, ...)), not through the KV cache.
Infill fill_blanks(const nn::Model& model, const std::vector<int32_t>& part_a, data::InfillTokens tokens,
                   const GenerationConfig& config, const TokenBytes& token_bytes = {});

}  // namespace magellano::generate
