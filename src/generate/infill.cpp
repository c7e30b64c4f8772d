#include "magellano/generate/infill.hpp"

#include <algorithm>

#include "magellano/runtime/error.hpp"

namespace magellano::generate {

Infill fill_blanks(const nn::Model& model, const std::vector<int32_t>& part_a, data::InfillTokens tokens,
                   const GenerationConfig& config, const TokenBytes& token_bytes) {
  const auto blanks = std::count(part_a.begin(), part_a.end(), tokens.mask);
  if (blanks == 0)
    throw Error("infill: the input holds no [MASK] (id " + std::to_string(tokens.mask) + "); mark each blank with [MASK].");
  if (model.spec().attention.rope_2d)
    throw Error("infill: this model was trained with GLM's 2D positions (model.infill_positions \"glm2d\"), which "
                "decoding does not give part B yet; use a model trained with \"sequential\" positions.");
  GenerationConfig gc = config;
  gc.prompt_as_prefix = false;
  gc.prefix_tokens = static_cast<int64_t>(part_a.size());
  gc.stop.clear();
  // [END] closes a blank; a [START] or [MASK] (never a span token in training) ends it too.
  gc.eos_ids.insert(gc.eos_ids.end(), {tokens.end, tokens.start, tokens.mask});
  Infill out;
  out.part_a = part_a;
  std::vector<int32_t> prompt = part_a;
  for (int64_t j = 0; j < blanks; ++j) {
    prompt.push_back(tokens.start);
    Completion c = generate(model, {prompt}, gc).front();
    if (c.finish == FinishReason::eos) c.ids.pop_back();  // the id that ended the blank
    prompt.insert(prompt.end(), c.ids.begin(), c.ids.end());
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
