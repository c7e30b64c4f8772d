// add_gguf_vocab: tokens, types and merges from the BPE model and its added tokens, special ids
// from the tokenizer's spec; the pre-tokenizer named by its regex.
#include "magellano/data/gguf_vocab.hpp"

#include <unordered_map>

#include "magellano/data/byte_alphabet.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {
namespace {

// tokenizer.json Split patterns (as the JSON spells them, after unescaping) -> llama.cpp's names.
// llama.cpp runs its own copy of each pattern (src/llama-vocab.cpp, LLAMA3 and QWEN2).
struct KnownSplit {
  const char* pattern;
  const char* name;
};
constexpr KnownSplit kKnownSplits[] = {
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     "llama-bpe"},
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     "qwen2"},
};

}  // namespace

std::string gguf_pre_tokenizer_name(const Tokenizer& tok) {
  const PieceSplitter& s = tok.spec().splitter;
  if (s.add_prefix_space)
    throw Error("GGUF export: the tokenizer's ByteLevel add_prefix_space has no llama.cpp equivalent.");
  if (s.splits.empty() && s.byte_level_regex) return "gpt-2";
  if (s.splits.size() == 1 && !s.byte_level_regex && !s.splits[0].invert &&
      s.splits[0].behavior == SplitBehavior::Isolated)
    for (const auto& k : kKnownSplits)
      if (s.splits[0].regex.pattern() == k.pattern) return k.name;
  std::string what = s.splits.empty() ? std::string("no pre-tokenizer regex")
                                      : "the Split pattern '" + s.splits[0].regex.pattern().substr(0, 60) + "'";
  throw Error("GGUF export: the tokenizer's pre-tokenizer (" + what +
              ") is not one llama.cpp knows by name (GPT-2's ByteLevel regex, Llama-3's or Qwen2's Split).");
}

void add_gguf_vocab(io::GgufWriter& w, const Tokenizer& tok, int64_t vocab_size) {
  const BpeModel& m = tok.model();
  if (static_cast<int64_t>(m.tokens.size()) > vocab_size)
    throw Error("GGUF export: the tokenizer has " + std::to_string(m.tokens.size()) + " ids but the model only " +
                std::to_string(vocab_size) + ": it is not this model's tokenizer (pass --tokenizer DIR).");
  const std::string pre = gguf_pre_tokenizer_name(tok);
  std::unordered_map<uint32_t, const AddedToken*> added;
  for (const auto& a : tok.spec().added) added[a.id] = &a;

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(vocab_size));
  types.reserve(static_cast<size_t>(vocab_size));
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (id >= static_cast<int64_t>(m.tokens.size())) {
      tokens.push_back("[PAD" + std::to_string(id) + "]");
      types.push_back(static_cast<int32_t>(GgufTokenType::unused));
    } else if (auto it = added.find(static_cast<uint32_t>(id)); it != added.end()) {
      tokens.push_back(it->second->content);
      types.push_back(static_cast<int32_t>(it->second->special ? GgufTokenType::control : GgufTokenType::user_defined));
    } else {
      tokens.push_back(bytes_to_alphabet(m.tokens[static_cast<size_t>(id)]));
      types.push_back(static_cast<int32_t>(GgufTokenType::normal));
    }
  }
  std::vector<std::string> merges;
  merges.reserve(m.merges.size());
  for (const auto& [l, r] : m.merges) merges.push_back(bytes_to_alphabet(m.tokens[l]) + " " + bytes_to_alphabet(m.tokens[r]));

  const TokenizerSpec& spec = tok.spec();
  std::optional<uint32_t> bos = spec.bos_id;
  std::optional<uint32_t> eos = tok.eot_id();
  if (!bos) bos = eos;
  bool add_bos = false;
  if (!spec.template_prefix.empty()) {
    if (spec.template_prefix.size() != 1 || !spec.bos_id || spec.template_prefix[0] != *spec.bos_id)
      throw Error("GGUF export: the tokenizer's template puts ids other than one BOS before a text; llama.cpp's "
                  "tokenizer.ggml.add_bos_token cannot express it.");
    add_bos = true;
  }
  if (!spec.template_suffix.empty())
    throw Error("GGUF export: the tokenizer's template puts ids after a text; llama.cpp's add_eos_token would "
                "add its EOS, which is not the same.");

  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_array("tokenizer.ggml.tokens", tokens);
  w.add_array("tokenizer.ggml.token_type", types);
  w.add_array("tokenizer.ggml.merges", merges);
  if (bos) w.add_u32("tokenizer.ggml.bos_token_id", *bos);
  if (eos) w.add_u32("tokenizer.ggml.eos_token_id", *eos);
  w.add_bool("tokenizer.ggml.add_bos_token", add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
}

}  // namespace magellano::data
