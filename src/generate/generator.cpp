#include "magellano/generate/generator.hpp"

#include <algorithm>

#include "magellano/autograd/tape.hpp"
#include "magellano/generate/text_stream.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/reduce.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::generate {

const char* to_string(FinishReason r) {
  switch (r) {
    case FinishReason::eos: return "eos";
    case FinishReason::stop: return "stop";
    default: return "length";
  }
}

namespace {

Context& model_context(const nn::Model& model) {
  const auto params = model.parameters();
  if (params.empty()) throw Error("generate: the model has no parameters.");
  return params.front().tensor.ctx();
}

void check_prompts(const std::vector<std::vector<int32_t>>& prompts, int64_t vocab) {
  if (prompts.empty()) throw Error("generate: no prompt given.");
  for (size_t p = 0; p < prompts.size(); ++p) {
    if (prompts[p].empty())
      throw Error("generate: prompt " + std::to_string(p + 1) + " is empty: give at least one token.");
    for (int32_t id : prompts[p])
      if (id < 0 || id >= vocab)
        throw Error("generate: prompt " + std::to_string(p + 1) + " has id " + std::to_string(id) +
                    ", outside the model's vocabulary [0, " + std::to_string(vocab) + ").");
  }
}

// Throws unless every logit is finite. x·0 is 0 for a finite x and NaN for NaN or ±Inf, so the
// sum is exactly 0 when all are finite (two kernels and one scalar read per call).
void require_finite_logits(const Tensor& logits) {
  if (ops::sum(ops::scale(logits, 0.0f)).item() != 0.0f)
    throw Error("generate: the model's output for the prompt is not finite (NaN or infinite logits) although "
                "its weights are: the checkpoint's weights are too large to compute with. Use another checkpoint.");
}

}  // namespace

Prefill prefill(const nn::Model& model, const std::vector<std::vector<int32_t>>& prompts, bool prompt_as_prefix,
                int64_t prefix_tokens) {
  const int64_t V = model.spec().vocab_size, B = static_cast<int64_t>(prompts.size());
  check_prompts(prompts, V);
  Context& ctx = model_context(model);
  autograd::NoGradScope no_grad;
  Prefill out{model.empty_state(B), Tensor::empty(ctx, Shape{B, V})};
  for (int64_t b = 0; b < B; ++b) {
    const auto& ids = prompts[b];
    const int64_t L = static_cast<int64_t>(ids.size());
    const int64_t p = prompt_as_prefix ? L : std::min(prefix_tokens, L);
    const Tensor prefix = p > 0 ? Tensor::from_host_i32(ctx, Shape{1}, {static_cast<int32_t>(p)}) : Tensor();
    const Tensor last = model.prefill(Tensor::from_host_i32(ctx, Shape{1, L}, ids), out.state, b, prefix);  // (1, V)
    ops::copy_into(last, out.logits.narrow_rows(b, b + 1));
  }
  return out;
}

std::vector<Completion> generate(const nn::Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const GenerationConfig& config, const TokenBytes& token_bytes,
                                 const GenerationCallbacks& callbacks) {
  validate(config.sampling);
  if (config.max_new_tokens < 0) throw Error("generate: max_new_tokens must be >= 0.");
  if (!config.stop.empty() && !token_bytes)
    throw Error("generate: stop strings need a tokenizer to decode the text.");
  const int64_t V = model.spec().vocab_size, B = static_cast<int64_t>(prompts.size());
  check_prompts(prompts, V);
  Context& ctx = model_context(model);
  std::vector<Completion> out(prompts.size());
  std::vector<TextStream> streams;
  for (size_t b = 0; b < prompts.size(); ++b) {
    out[b].prompt_ids = prompts[b];
    streams.emplace_back(config.stop);
  }
  std::vector<bool> finished(prompts.size(), false);
  size_t remaining = prompts.size();
  auto emit_text = [&](size_t b) {
    const std::string ready = streams[b].take_ready();
    if (!ready.empty() && callbacks.on_text) callbacks.on_text(b, ready);
  };
  Prefill pre;  // the batch's decode state, once the prompts are in
  auto finish = [&](size_t b, FinishReason why) {
    finished[b] = true;
    pre.state.end_row(static_cast<int64_t>(b));  // frees its cached keys and values at once
    --remaining;
    streams[b].finish();
    emit_text(b);
    out[b].text = streams[b].text();
    out[b].finish = why;
    if (callbacks.on_finish) callbacks.on_finish(b, out[b]);
  };
  if (config.max_new_tokens == 0) {
    for (size_t b = 0; b < prompts.size(); ++b) finish(b, FinishReason::length);
    return out;
  }

  pre = prefill(model, prompts, config.prompt_as_prefix, config.prefix_tokens);
  require_finite_logits(pre.logits);
  Sampler sampler(ctx, B, V, config.sampling, prompts);
  autograd::NoGradScope no_grad;
  Tensor logits = pre.logits;
  for (int64_t step = 0; step < config.max_new_tokens; ++step) {
    const Tensor ids = sampler.sample(logits, step);  // (B) i32, stays on the device
    const std::vector<int32_t> host_ids = ids.to_host_i32();  // the one read per token
    for (size_t b = 0; b < prompts.size(); ++b) {
      if (finished[b]) continue;
      const int32_t id = host_ids[b];
      out[b].ids.push_back(id);
      if (callbacks.on_token) callbacks.on_token(b, id);
      if (std::find(config.eos_ids.begin(), config.eos_ids.end(), id) != config.eos_ids.end()) {
        finish(b, FinishReason::eos);
        continue;
      }
      if (token_bytes) {
        const bool stopped = streams[b].append(token_bytes(id));
        emit_text(b);
        if (stopped) {
          finish(b, FinishReason::stop);
          continue;
        }
      }
      if (step + 1 == config.max_new_tokens) finish(b, FinishReason::length);
    }
    if (remaining == 0) break;
    logits = model.step(ids, pre.state);  // (B, V)
  }
  return out;
}

}  // namespace magellano::generate
