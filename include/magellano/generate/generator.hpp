// Text generation with the recurrent state: each prompt is prefilled by the parallel forward
// (Model::prefill: no autograd, logits of the last position only), its decode state and last
// logits are copied into row b of a batched state,
// then every row advances one token per Model::step, whose cost does not depend on the
// position. Sampling runs on the device (sampler.hpp).
//
// Per generated token, what crosses between host and device:
//   device -> host: the B sampled ids (B × 4 bytes, one blocking read), needed to stream text
//                   and to check end-of-text and stop strings; plus, inside Model::step, each
//                   MoE block's routing offsets (X + 1 int32 per MoE block: the MoE layer's one
//                   synchronisation, see nn/moe.hpp)
//   host -> device: nothing but kernel arguments (the step number); the sampled ids go into
//                   the next step straight from the device
// Rows that have finished keep stepping with the others (their output is ignored) until every
// row has finished or max_new_tokens is reached. The prefill's logits must be finite (one check,
// one scalar read): a model whose output is NaN or infinite is an error, not garbage text.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "magellano/generate/sampler.hpp"
#include "magellano/nn/model.hpp"

namespace magellano::generate {

struct GenerationConfig {
  int64_t max_new_tokens = 100;
  SamplingParams sampling;
  std::vector<int32_t> eos_ids;   // end-of-text ids: generation of a row stops after any of them
  std::vector<std::string> stop;  // stop strings (need token_bytes)
  // Prefix-LM models (train.objective prefix_lm): the prompt is the prefix (its positions see each
  // other in the attention layers); generated tokens are causal, so each equals what a full
  // prefix-LM forward over prompt + generated text (prefix = the prompt) predicts there.
  bool prompt_as_prefix = false;
  // > 0 (and prompt_as_prefix off): the first prefix_tokens of every prompt are the prefix, the
  // rest of the prompt and the generated tokens causal (blank infilling's part A, infill.hpp).
  int64_t prefix_tokens = 0;
};

enum class FinishReason { length, eos, stop };
const char* to_string(FinishReason r);

struct Completion {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> ids;  // generated ids, the end-of-text id or the stop string's last token included
  std::string text;          // decoded ids, without end-of-text, cut before a stop string
  FinishReason finish = FinishReason::length;
};

struct GenerationCallbacks {
  // Bytes of row's text that are final (see text_stream.hpp), as soon as they are.
  std::function<void(size_t row, std::string_view bytes)> on_text;
  // Every generated id of a row that has not finished, as it is produced.
  std::function<void(size_t row, int32_t id)> on_token;
  // A row has finished; its completion is complete.
  std::function<void(size_t row, const Completion&)> on_finish;
};

// The bytes of one token id (a tokenizer's decode); empty function = no tokenizer: texts stay
// empty and stop strings are refused.
using TokenBytes = std::function<std::string(int32_t id)>;

// prompts: one non-empty list of ids (< vocab) per row. Returns one completion per prompt.
std::vector<Completion> generate(const nn::Model& model,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerationConfig& config, const TokenBytes& token_bytes = {},
                                 const GenerationCallbacks& callbacks = {});

// Prefill: the prompts' states in rows of one batched state, and their last logits (B, V).
struct Prefill {
  nn::DecodeState state;
  Tensor logits;
};
// prompt_as_prefix: each prompt is prefilled as a prefix-LM prefix; else prefix_tokens > 0: its
// first prefix_tokens (GenerationConfig).
Prefill prefill(const nn::Model& model, const std::vector<std::vector<int32_t>>& prompts,
                bool prompt_as_prefix = false, int64_t prefix_tokens = 0);

}  // namespace magellano::generate
