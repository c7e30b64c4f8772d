#include "magellano/generate/infill.hpp"

#include <algorithm>

#include "magellano/autograd/tape.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::generate {
namespace {

// One blank of a model with GLM's 2D positions (attention rope_2d): prompt = A ++ the spans so far
// ++ [START], prompt_ids their 2D ids ((t, 0) over A; (the blank's [MASK] index, 1 ..) over each
// span). The prompt is prefilled once into the KV cache (prefix |A|, its ids); each sampled token
// then steps with the ids (mask_at, next block id), so a blank costs one step per token.
Completion decode_blank_2d(const nn::Model& model, const std::vector<int32_t>& prompt,
                           const std::vector<int32_t>& prompt_ids, int32_t prefix, int32_t mask_at,
                           const GenerationConfig& gc) {
  autograd::NoGradScope no_grad;
  Context& ctx = model.parameters().front().tensor.ctx();
  const auto L = static_cast<int64_t>(prompt.size());
  Sampler sampler(ctx, 1, model.spec().vocab_size, gc.sampling, {prompt});
  Completion c;
  c.prompt_ids = prompt;
  nn::DecodeState state;
  Tensor logits = model.prefill(Tensor::from_host_i32(ctx, Shape{1, L}, prompt), state, 0,
                                Tensor::from_host_i32(ctx, Shape{1}, {prefix}),
                                Tensor::from_host_i32(ctx, Shape{1, L, 2}, prompt_ids));  // (1, V)
  int32_t block = prompt_ids.back();  // the [START]'s block id
  for (int64_t step = 0; step < gc.max_new_tokens; ++step) {
    const int32_t id = sampler.sample(logits, step).to_host_i32()[0];
    c.ids.push_back(id);
    if (std::find(gc.eos_ids.begin(), gc.eos_ids.end(), id) != gc.eos_ids.end()) {
      c.finish = FinishReason::eos;
      break;
    }
    if (step + 1 == gc.max_new_tokens) break;
    logits = model.step(Tensor::from_host_i32(ctx, Shape{1}, {id}), state,
                        Tensor::from_host_i32(ctx, Shape{1, 2}, {mask_at, ++block}));
  }
  return c;
}

}  // namespace

Infill fill_blanks(const nn::Model& model, const std::vector<int32_t>& part_a, data::InfillTokens tokens,
                   const GenerationConfig& config, const TokenBytes& token_bytes) {
  const auto blanks = std::count(part_a.begin(), part_a.end(), tokens.mask);
  if (blanks == 0)
    throw Error("infill: the input holds no [MASK] (id " + std::to_string(tokens.mask) + "); mark each blank with [MASK].");
  GenerationConfig gc = config;
  gc.prompt_as_prefix = false;
  gc.prefix_tokens = static_cast<int64_t>(part_a.size());
  gc.stop.clear();
  // [END] closes a blank; a [START] or [MASK] (never a span token in training) ends it too.
  gc.eos_ids.insert(gc.eos_ids.end(), {tokens.end, tokens.start, tokens.mask});
  Infill out;
  out.part_a = part_a;
  std::vector<int32_t> prompt = part_a;
  // GLM 2D ids (model.infill_positions glm2d): (t, 0) over A; blank j's tokens at its [MASK]'s index.
  const bool glm2d = model.spec().attention.rope_2d;
  std::vector<int32_t> ids, mask_at;
  for (size_t t = 0; t < part_a.size(); ++t) {
    ids.insert(ids.end(), {static_cast<int32_t>(t), 0});
    if (part_a[t] == tokens.mask) mask_at.push_back(static_cast<int32_t>(t));
  }
  for (int64_t j = 0; j < blanks; ++j) {
    prompt.push_back(tokens.start);
    ids.insert(ids.end(), {mask_at[j], 1});
    Completion c = glm2d ? decode_blank_2d(model, prompt, ids, static_cast<int32_t>(part_a.size()), mask_at[j], gc)
                         : generate(model, {prompt}, gc).front();
    if (c.finish == FinishReason::eos) c.ids.pop_back();  // the id that ended the blank
    prompt.insert(prompt.end(), c.ids.begin(), c.ids.end());
    for (size_t k = 0; k < c.ids.size(); ++k) ids.insert(ids.end(), {mask_at[j], static_cast<int32_t>(k + 2)});
    out.spans.push_back(std::move(c.ids));
    out.finish.push_back(c.finish);
  }
  size_t next = 0;
  for (const int32_t id : part_a) {
    if (id != tokens.mask) out.filled.push_back(id);
    else out.filled.insert(out.filled.end(), out.spans[next].begin(), out.spans[next].end()), ++next;
  }
  if (token_bytes)
    for (const int32_t id : out.filled) out.text += token_bytes(id);
  return out;
}

}  // namespace magellano::generate
