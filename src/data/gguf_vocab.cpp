// add_gguf_vocab: byte-level: tokens, types and merges from the BPE model and its added tokens, the
// pre-tokenizer named by its regex; SentencePiece-style: pieces, scores from the merge ranks, types;
// special ids from the tokenizer's spec.
#include "magellano/data/gguf_vocab.hpp"

#include <algorithm>
#include <unordered_map>

#include "magellano/data/byte_alphabet.hpp"
#include "magellano/data/unicode_class.hpp"
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
  if (tok.spec().sentencepiece) return "default";
  for (const NormalizerStep& n : tok.spec().normalizer.steps)
    if (n.kind != NormalizerStep::Kind::Nfc)
      throw Error("GGUF export: the tokenizer's normalizer (Prepend or Replace before a byte-level BPE) has no "
                  "llama.cpp equivalent.");
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

std::vector<float> gguf_spm_scores(const Tokenizer& tok) {
  if (!tok.spec().sentencepiece) throw Error("GGUF export: SPM scores are for a SentencePiece-style tokenizer.");
  const SentencePieceSpec& sp = *tok.spec().sentencepiece;
  const BpeModel& m = tok.model();
  std::unordered_map<std::string, uint32_t> id_of;
  std::vector<bool> outside(m.tokens.size(), false);
  for (uint32_t id : m.special_ids) outside[id] = true;
  for (uint32_t id = 0; id < sp.pieces.size(); ++id)
    if (!outside[id]) id_of.emplace(sp.pieces[id], id);
  constexpr float kUnmade = -1e9f;
  std::vector<float> scores(m.tokens.size(), kUnmade);
  for (uint32_t r = static_cast<uint32_t>(m.merges.size()); r-- > 0;) {  // the lowest rank wins
    const auto [a, b] = m.merges[r];
    scores[id_of.at(sp.pieces[a] + sp.pieces[b])] = -1.0f - static_cast<float>(r);
  }
  for (uint32_t id = 0; id < sp.pieces.size(); ++id) {
    const std::string& p = sp.pieces[id];
    uint32_t cp;
    const auto* b = reinterpret_cast<const unsigned char*>(p.data());
    const bool one_char = !p.empty() && decode_utf8(b, b + p.size(), &cp) == p.size();
    if (one_char || byte_fallback_value(p)) scores[id] = 0.0f;
  }
  for (const AddedToken& a : tok.spec().added) scores[a.id] = -1000.0f;
  return scores;
}

namespace {

// Whether llama.cpp's SPM stretch preparation (a space first, then ' ' -> "▁") is what the
// tokenizer does; throws a line naming what differs.
bool spm_add_space_prefix(const Tokenizer& tok) {
  const TokenizerSpec& spec = tok.spec();
  const SentencePieceSpec& sp = *spec.sentencepiece;
  const std::string meta = "\xE2\x96\x81";
  const auto& steps = spec.normalizer.steps;
  if (sp.metaspace) {
    if (!steps.empty())
      throw Error("GGUF export: a normalizer before the Metaspace pre-tokenizer has no llama.cpp equivalent.");
    if (sp.metaspace->replacement != meta)
      throw Error("GGUF export: llama.cpp's SPM tokenizer writes spaces as U+2581, not the Metaspace replacement \"" +
                  sp.metaspace->replacement + "\".");
    if (sp.metaspace->split)
      for (uint32_t id = 0; id < sp.pieces.size(); ++id)
        if (sp.pieces[id].find(meta, 1) != std::string::npos && !tok.is_special(id))
          throw Error("GGUF export: the Metaspace pre-tokenizer splits before every U+2581 but token " +
                      std::to_string(id) + " holds one inside, which llama.cpp's SPM tokenizer would make.");
    return sp.metaspace->prepend_scheme != PrependScheme::Never;
  }
  const bool replace_last = !steps.empty() && steps.back().kind == NormalizerStep::Kind::Replace &&
                            steps.back().text == " " && steps.back().content == meta;
  if (replace_last && steps.size() == 1) return false;
  if (replace_last && steps.size() == 2 && steps[0].kind == NormalizerStep::Kind::Prepend && steps[0].text == meta)
    return true;
  throw Error("GGUF export: llama.cpp's SPM tokenizer needs the normalizer Replace(\" \", \"\u2581\") after an "
              "optional Prepend(\"\u2581\") (or a Metaspace pre-tokenizer); this tokenizer's differs.");
}

}  // namespace

void add_gguf_vocab(io::GgufWriter& w, const Tokenizer& tok, int64_t vocab_size) {
  const BpeModel& m = tok.model();
  if (static_cast<int64_t>(m.tokens.size()) > vocab_size)
    throw Error("GGUF export: the tokenizer has " + std::to_string(m.tokens.size()) + " ids but the model only " +
                std::to_string(vocab_size) + ": it is not this model's tokenizer (pass --tokenizer DIR).");
  const std::string pre = gguf_pre_tokenizer_name(tok);
  std::unordered_map<uint32_t, const AddedToken*> added;
  for (const auto& a : tok.spec().added) added[a.id] = &a;

  const TokenizerSpec& spec = tok.spec();
  const SentencePieceSpec* sp = spec.sentencepiece ? &*spec.sentencepiece : nullptr;
  const bool add_space_prefix = sp && spm_add_space_prefix(tok);
  std::vector<float> scores;
  if (sp) {
    scores = gguf_spm_scores(tok);
    scores.resize(static_cast<size_t>(vocab_size), -10000.0f);
  }
  std::vector<bool> listed(m.tokens.size(), false);  // SentencePiece-style: ids with a vocabulary string
  if (sp) {
    for (size_t id = 0; id < m.tokens.size(); ++id) listed[id] = true;
    for (uint32_t id : m.special_ids) listed[id] = false;
  }
  const auto type = [](GgufTokenType t) { return static_cast<int32_t>(t); };
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(vocab_size));
  types.reserve(static_cast<size_t>(vocab_size));
  for (int64_t id = 0; id < vocab_size; ++id) {
    const auto u = static_cast<uint32_t>(id);
    const auto it = added.find(u);
    if (id >= static_cast<int64_t>(m.tokens.size()) || (sp && it == added.end() && !listed[u])) {
      tokens.push_back("[PAD" + std::to_string(id) + "]");
      types.push_back(type(GgufTokenType::unused));
      if (sp) scores[u] = -10000.0f;  // the converter's padding
    } else if (sp && sp->unk_id == u) {
      tokens.push_back(sp->pieces[u]);
      types.push_back(type(GgufTokenType::unknown));
    } else if (it != added.end()) {
      std::string content = it->second->content;
      if (sp && !it->second->special) {  // the converter's "pre-normalize user-defined spaces"
        for (size_t at = content.find("\xE2\x96\x81"); at != std::string::npos; at = content.find("\xE2\x96\x81", at + 1))
          content.replace(at, 3, " ");
      }
      tokens.push_back(std::move(content));
      types.push_back(type(it->second->special ? GgufTokenType::control : GgufTokenType::user_defined));
    } else if (sp) {
      tokens.push_back(sp->pieces[u]);
      const bool byte = byte_fallback_value(sp->pieces[u]) && sp->pieces[u][3] != '+';  // <0x[0-9A-Fa-f]{2}>
      types.push_back(type(byte ? GgufTokenType::byte : GgufTokenType::normal));
    } else {
      tokens.push_back(bytes_to_alphabet(m.tokens[u]));
      types.push_back(type(GgufTokenType::normal));
    }
  }
  std::vector<std::string> merges;
  if (!sp) {
    merges.reserve(m.merges.size());
    for (const auto& [l, r] : m.merges) merges.push_back(bytes_to_alphabet(m.tokens[l]) + " " + bytes_to_alphabet(m.tokens[r]));
  }

  // A template of one id before the text names the BOS when the configs do not.
  std::optional<uint32_t> bos = spec.bos_id;
  if (!bos && spec.template_prefix.size() == 1) bos = spec.template_prefix[0];
  std::optional<uint32_t> eos = tok.eot_id();
  if (!bos) bos = eos;
  bool add_bos = false;
  if (!spec.template_prefix.empty()) {
    if (spec.template_prefix.size() != 1 || spec.template_prefix[0] != *bos)
      throw Error("GGUF export: the tokenizer's template puts ids other than one BOS before a text; llama.cpp's "
                  "tokenizer.ggml.add_bos_token cannot express it.");
    add_bos = true;
  }
  if (!spec.template_suffix.empty())
    throw Error("GGUF export: the tokenizer's template puts ids after a text; llama.cpp's add_eos_token would "
                "add its EOS, which is not the same.");

  w.add_string("tokenizer.ggml.model", sp ? "llama" : "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_array("tokenizer.ggml.tokens", tokens);
  if (sp) w.add_array("tokenizer.ggml.scores", scores);
  w.add_array("tokenizer.ggml.token_type", types);
  if (!sp) w.add_array("tokenizer.ggml.merges", merges);
  if (bos) w.add_u32("tokenizer.ggml.bos_token_id", *bos);
  if (eos) w.add_u32("tokenizer.ggml.eos_token_id", *eos);
  if (sp && sp->unk_id) w.add_u32("tokenizer.ggml.unknown_token_id", *sp->unk_id);
  if (spec.pad_id) w.add_u32("tokenizer.ggml.padding_token_id", *spec.pad_id);
  w.add_bool("tokenizer.ggml.add_bos_token", add_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  if (sp) w.add_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
}

}  // namespace magellano::data
