// tokenizer.json -> (BpeModel, TokenizerSpec): tokenizers' serialization.rs (tokenizer, BPE model,
// added vocabulary, normalizers, pre-tokenizers, processors, decoders), checked key by key.
#include "magellano/data/hf_tokenizer_json.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "magellano/data/byte_alphabet.hpp"
#include "magellano/data/unicode_class.hpp"
#include "magellano/io/hf_json.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kWhatToDo =
    " Magellano reads BPE tokenizer.json files, byte-level (GPT-2, GPT-NeoX, Llama-3, Granite style) or "
    "SentencePiece-style (Llama 2, Mistral, Jamba); for another kind, use vocab.json + merges.txt or a "
    "tokenizer made by `magellano train-tokenizer`.";

// Reads one tokenizer.json; every error names the file.
class Reader {
 public:
  explicit Reader(std::string name) : name_(std::move(name)) {}

  [[noreturn]] void bad(const std::string& what) const { throw Error(name_ + ": " + what + "."); }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw Error(name_ + ": " + what + " is not supported." + kWhatToDo);
  }

  const json& member(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object() || !obj.contains(key)) bad(where + " has no \"" + key + "\"");
    return obj[key];
  }
  std::string string_of(const json& v, const std::string& where) const {
    if (!v.is_string()) bad(where + " is " + json_excerpt(v) + "; expected a string");
    return v.get<std::string>();
  }
  bool flag(const json& obj, const char* key, bool fallback, const std::string& where) const {
    if (!obj.contains(key) || obj[key].is_null()) return fallback;
    if (!obj[key].is_boolean()) bad(where + "'s \"" + key + "\" is " + json_excerpt(obj[key]) + "; expected true or false");
    return obj[key].get<bool>();
  }
  uint32_t id_of(const json& v, const std::string& where) const {
    if (!v.is_number_unsigned() || v.get<uint64_t>() >= (1u << 31)) bad(where + " is " + json_excerpt(v) + "; expected a token id");
    return v.get<uint32_t>();
  }
  std::string type_of(const json& obj, const std::string& where) const {
    if (!obj.is_object()) bad(where + " is " + json_excerpt(obj) + "; expected an object");
    return string_of(member(obj, "type", where), where + "'s \"type\"");
  }

  // ---- model ----
  // vocab: key -> id; the BPE merges as (left key, right key).
  struct ModelOptions {
    bool ignore_merges = false, byte_fallback = false, fuse_unk = false;
    std::optional<std::string> unk_token;
  };
  void model(const json& m, std::unordered_map<std::string, uint32_t>& vocab,
             std::vector<std::pair<std::string, std::string>>& merges, ModelOptions& opt) const {
    if (!m.is_object()) bad("\"model\" is " + json_excerpt(m) + "; expected an object");
    const std::string type = m.contains("type") ? string_of(m["type"], "the model's \"type\"") : "BPE";
    if (type != "BPE") unsupported("model type \"" + type + "\"");
    opt.byte_fallback = flag(m, "byte_fallback", false, "the BPE model");
    if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
      unsupported("BPE dropout " + json_excerpt(m["dropout"]));
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty()))
        unsupported(std::string("a BPE model with \"") + key + "\" " + json_excerpt(m[key]));
    opt.ignore_merges = flag(m, "ignore_merges", false, "the BPE model");
    if (m.contains("unk_token") && !m["unk_token"].is_null())
      opt.unk_token = string_of(m["unk_token"], "the model's \"unk_token\"");
    opt.fuse_unk = flag(m, "fuse_unk", false, "the BPE model");

    const json& v = member(m, "vocab", "the BPE model");
    if (!v.is_object()) bad("the model's \"vocab\" is " + json_excerpt(v) + "; expected {\"token\": id, ...}");
    vocab.reserve(v.size() * 2);
    for (const auto& [key, value] : v.items()) vocab.emplace(key, id_of(value, "the id of token \"" + excerpt(key) + "\""));

    const json& ms = member(m, "merges", "the BPE model");
    if (!ms.is_array()) bad("the model's \"merges\" is " + json_excerpt(ms) + "; expected a list");
    merges.reserve(ms.size());
    for (size_t r = 0; r < ms.size(); ++r) {
      const json& e = ms[r];
      const std::string where = "merge " + std::to_string(r);
      if (e.is_string()) {  // "left right"
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          bad(where + " \"" + excerpt(s) + "\" is not \"<left> <right>\"");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2) {  // ["left", "right"]
        merges.emplace_back(string_of(e[0], where), string_of(e[1], where));
      } else {
        bad(where + " is " + json_excerpt(e) + "; expected \"a b\" or [\"a\", \"b\"]");
      }
    }
  }

  // ---- normalizer ----
  void normalizer(const json& n, TextNormalizer& out) const {
    if (n.is_null()) return;
    const std::string type = type_of(n, "the normalizer");
    if (type == "Sequence") {
      const json& list = member(n, "normalizers", "the Sequence normalizer");
      if (!list.is_array()) bad("the Sequence normalizer's \"normalizers\" is not a list");
      for (const json& step : list) normalizer(step, out);
    } else if (type == "NFC") {
      out.steps.push_back({NormalizerStep::Kind::Nfc, "", ""});
    } else if (type == "Prepend") {
      out.steps.push_back({NormalizerStep::Kind::Prepend, string_of(member(n, "prepend", "the Prepend normalizer"), "the Prepend string"), ""});
    } else if (type == "Replace") {
      const std::string pattern = literal_pattern(n, "the Replace normalizer");
      out.steps.push_back({NormalizerStep::Kind::Replace, pattern,
                           string_of(member(n, "content", "the Replace normalizer"), "the Replace content")});
    } else {
      unsupported("the normalizer " + json_excerpt(n, 60) + " (only NFC, Prepend, Replace of a string, or a Sequence of them)");
    }
  }

  // A Replace step's {"String": "..."} pattern (a regex is refused).
  std::string literal_pattern(const json& r, const std::string& where) const {
    const json& pattern = member(r, "pattern", where);
    if (pattern.is_object() && pattern.contains("String")) {
      std::string text = string_of(pattern["String"], where + "'s pattern");
      if (text.empty()) bad(where + "'s pattern is empty");
      return text;
    }
    unsupported(where + " with the pattern " + json_excerpt(pattern, 60) + " (only {\"String\": ...})");
  }

  Metaspace metaspace(const json& p) const {
    Metaspace m;
    m.replacement = string_of(member(p, "replacement", "the Metaspace pre-tokenizer"), "the Metaspace replacement");
    uint32_t cp;
    const auto* b = reinterpret_cast<const unsigned char*>(m.replacement.data());
    if (m.replacement.empty() || decode_utf8(b, b + m.replacement.size(), &cp) != m.replacement.size() ||
        cp == kInvalidCodePoint)
      bad("the Metaspace replacement \"" + excerpt(m.replacement) + "\" is not one character");
    if (p.contains("prepend_scheme") && !p["prepend_scheme"].is_null()) {
      const std::string scheme = string_of(p["prepend_scheme"], "the Metaspace prepend_scheme");
      if (scheme == "always") m.prepend_scheme = PrependScheme::Always;
      else if (scheme == "first") m.prepend_scheme = PrependScheme::First;
      else if (scheme == "never") m.prepend_scheme = PrependScheme::Never;
      else bad("the Metaspace prepend_scheme \"" + excerpt(scheme) + "\" is unknown (expected always, first or never)");
    }
    if (!flag(p, "add_prefix_space", true, "the Metaspace pre-tokenizer")) {
      if (p.contains("prepend_scheme") && m.prepend_scheme != PrependScheme::Never)
        bad("the Metaspace pre-tokenizer's add_prefix_space false does not match its prepend_scheme");
      m.prepend_scheme = PrependScheme::Never;
    }
    m.split = flag(p, "split", true, "the Metaspace pre-tokenizer");
    return m;
  }

  // The decoder of a SentencePiece-style file.
  void sentencepiece_decoder(const json& d, TokenDecoder& out) const {
    if (d.is_null()) unsupported("a SentencePiece-style tokenizer.json without a decoder");
    const std::string type = type_of(d, "the decoder");
    using K = DecoderStep::Kind;
    if (type == "Sequence") {
      const json& list = member(d, "decoders", "the Sequence decoder");
      if (!list.is_array()) bad("the Sequence decoder's \"decoders\" is not a list");
      for (const json& step : list) sentencepiece_decoder(step, out);
    } else if (type == "Replace") {
      DecoderStep s;
      s.kind = K::Replace;
      s.pattern = literal_pattern(d, "the Replace decoder");
      s.content = string_of(member(d, "content", "the Replace decoder"), "the Replace content");
      out.steps.push_back(s);
    } else if (type == "ByteFallback" || type == "Fuse") {
      DecoderStep s;
      s.kind = type == "Fuse" ? K::Fuse : K::ByteFallback;
      out.steps.push_back(s);
    } else if (type == "Strip") {
      DecoderStep s;
      s.kind = K::Strip;
      s.pattern = string_of(member(d, "content", "the Strip decoder"), "the Strip content");
      for (auto [key, field] : {std::pair{"start", &s.start}, std::pair{"stop", &s.stop}}) {
        const json& v = member(d, key, "the Strip decoder");
        if (!v.is_number_unsigned()) bad(std::string("the Strip decoder's \"") + key + "\" is " + json_excerpt(v));
        *field = v.get<size_t>();
      }
      out.steps.push_back(s);
    } else if (type == "Metaspace") {
      const Metaspace m = metaspace(d);
      DecoderStep s;
      s.kind = K::Metaspace;
      s.pattern = m.replacement;
      s.drop_first = m.prepend_scheme != PrependScheme::Never;
      out.steps.push_back(s);
    } else {
      unsupported("the decoder type \"" + type + "\" in a SentencePiece-style tokenizer.json");
    }
  }

  // ---- pre-tokenizer ----
  void pre_tokenizer(const json& p, PieceSplitter& out, bool& byte_level_seen) const {
    const std::string type = type_of(p, "the pre-tokenizer");
    if (byte_level_seen) unsupported("a pre-tokenizer (" + type + ") after ByteLevel");
    if (type == "Sequence") {
      const json& list = member(p, "pretokenizers", "the Sequence pre-tokenizer");
      if (!list.is_array()) bad("the Sequence pre-tokenizer's \"pretokenizers\" is not a list");
      for (const json& step : list) pre_tokenizer(step, out, byte_level_seen);
    } else if (type == "ByteLevel") {
      out.add_prefix_space = flag(p, "add_prefix_space", true, "the ByteLevel pre-tokenizer");
      out.byte_level_regex = flag(p, "use_regex", true, "the ByteLevel pre-tokenizer");
      byte_level_seen = true;
    } else if (type == "Split") {
      SplitStep step{SplitRegex::literal(""), SplitBehavior::Isolated, false};
      const json& pattern = member(p, "pattern", "the Split pre-tokenizer");
      if (pattern.is_object() && pattern.contains("Regex"))
        step.regex = SplitRegex::compile(string_of(pattern["Regex"], "the Split pattern"));
      else if (pattern.is_object() && pattern.contains("String"))
        step.regex = SplitRegex::literal(string_of(pattern["String"], "the Split pattern"));
      else
        bad("the Split pattern is " + json_excerpt(pattern) + "; expected {\"Regex\": ...} or {\"String\": ...}");
      static const std::map<std::string, SplitBehavior> behaviors = {
          {"Removed", SplitBehavior::Removed}, {"Isolated", SplitBehavior::Isolated},
          {"MergedWithPrevious", SplitBehavior::MergedWithPrevious}, {"MergedWithNext", SplitBehavior::MergedWithNext},
          {"Contiguous", SplitBehavior::Contiguous}};
      const std::string b = string_of(member(p, "behavior", "the Split pre-tokenizer"), "the Split behavior");
      const auto it = behaviors.find(b);
      if (it == behaviors.end()) bad("the Split behavior \"" + b + "\" is unknown");
      step.behavior = it->second;
      step.invert = flag(p, "invert", false, "the Split pre-tokenizer");
      out.splits.push_back(std::move(step));
    } else {
      unsupported("the pre-tokenizer type \"" + type + "\"");
    }
  }

  // ---- post-processor ----
  void post_processor(const json& p, const std::function<std::optional<uint32_t>(const std::string&)>& token_id,
                      TokenizerSpec& spec, bool& template_seen) const {
    if (p.is_null()) return;
    const std::string type = type_of(p, "the post-processor");
    if (type == "ByteLevel") return;  // offsets only
    if (type == "Sequence") {
      const json& list = member(p, "processors", "the Sequence post-processor");
      if (!list.is_array()) bad("the Sequence post-processor's \"processors\" is not a list");
      for (const json& step : list) post_processor(step, token_id, spec, template_seen);
      return;
    }
    if (type != "TemplateProcessing") unsupported("the post-processor type \"" + type + "\"");
    if (template_seen) unsupported("two TemplateProcessing post-processors");
    template_seen = true;
    const json& specials = p.contains("special_tokens") ? p["special_tokens"] : json::object();
    const json& single = member(p, "single", "the TemplateProcessing post-processor");
    if (!single.is_array()) bad("the template \"single\" is not a list");
    bool after_a = false;
    for (const json& piece : single) {
      if (piece.is_object() && piece.contains("Sequence")) {
        after_a = true;
        continue;
      }
      if (!piece.is_object() || !piece.contains("SpecialToken"))
        bad("the template piece " + json_excerpt(piece) + " is neither {\"SpecialToken\": ...} nor {\"Sequence\": ...}");
      const std::string name = string_of(member(piece["SpecialToken"], "id", "a template SpecialToken"), "a template SpecialToken id");
      std::vector<uint32_t> ids;
      if (specials.is_object() && specials.contains(name)) {
        const json& st = specials[name];
        const json& list = member(st, "ids", "the template special token \"" + name + "\"");
        if (!list.is_array()) bad("the template special token \"" + name + "\" has no list of ids");
        for (const json& id : list) ids.push_back(id_of(id, "an id of the template special token \"" + name + "\""));
      } else if (const auto id = token_id(name)) {
        ids.push_back(*id);
      } else {
        bad("the template names the special token \"" + excerpt(name) + "\", which is not a token");
      }
      auto& side = after_a ? spec.template_suffix : spec.template_prefix;
      side.insert(side.end(), ids.begin(), ids.end());
    }
  }

  void byte_level_decoder(const json& d) const {
    if (d.is_null()) unsupported("a tokenizer.json without a decoder (byte-level BPE needs ByteLevel)");
    const std::string type = type_of(d, "the decoder");
    if (type != "ByteLevel") unsupported("the decoder type \"" + type + "\"");
  }

  // tokenizers' AddedVocabulary::add_tokens: each content gets the id it already has (an earlier
  // added token's, or the vocabulary's for the same text), else the next free id.
  std::vector<AddedToken> added_tokens(const json& list, const std::unordered_map<std::string, uint32_t>& vocab) const {
    if (list.is_null()) return {};
    if (!list.is_array()) bad("\"added_tokens\" is not a list");
    std::vector<AddedToken> out;
    std::unordered_map<std::string, size_t> index;  // content -> position in out
    uint32_t next_id = static_cast<uint32_t>(vocab.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const json& t = list[i];
      const std::string where = "added token " + std::to_string(i);
      AddedToken a;
      a.content = string_of(member(t, "content", where), where + "'s \"content\"");
      if (t.contains("id")) id_of(t["id"], where + "'s \"id\"");
      a.special = flag(t, "special", false, where);
      a.single_word = flag(t, "single_word", false, where);
      a.lstrip = flag(t, "lstrip", false, where);
      a.rstrip = flag(t, "rstrip", false, where);
      a.normalized = flag(t, "normalized", !a.special, where);
      if (a.content.empty()) continue;
      if (auto it = index.find(a.content); it != index.end()) {
        a.id = out[it->second].id;
        out[it->second] = a;
        continue;
      }
      const auto v = vocab.find(a.content);
      a.id = v != vocab.end() ? v->second : next_id++;
      index.emplace(a.content, out.size());
      out.push_back(std::move(a));
    }
    return out;
  }

 private:
  std::string name_;
};

// The bytes a token's text stands for (the byte alphabet decoded, else its own UTF-8).
std::string token_bytes_of(const std::string& text) {
  auto bytes = alphabet_to_bytes(text);
  return bytes ? std::move(*bytes) : text;
}

}  // namespace

HfTokenizerParts parse_hf_tokenizer_json(std::string_view text, const std::string& name) {
  const Reader r(name);
  const json j = parse_json(text, name, " It may be truncated: re-download it.");
  if (!j.is_object()) r.bad("the file is not a JSON object");
  if (j.contains("version") && j["version"] != "1.0")
    r.unsupported("the tokenizer.json version " + json_excerpt(j["version"]) + " (only \"1.0\")");
  HfTokenizerParts out;
  r.normalizer(j.contains("normalizer") ? j["normalizer"] : json(), out.spec.normalizer);

  std::unordered_map<std::string, uint32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merge_keys;
  Reader::ModelOptions opt;
  r.model(r.member(j, "model", "the file"), vocab, merge_keys, opt);
  out.spec.ignore_merges = opt.ignore_merges;
  // No pre-tokenizer or Metaspace: the BPE works on characters (SentencePiece-style); else bytes.
  const json pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  const json dec = j.contains("decoder") ? j["decoder"] : json();
  const bool char_level = pre.is_null() || r.type_of(pre, "the pre-tokenizer") == "Metaspace";
  if (char_level) {
    SentencePieceSpec& sp = out.spec.sentencepiece.emplace();
    if (!pre.is_null()) sp.metaspace = r.metaspace(pre);
    if (!dec.is_null() && r.type_of(dec, "the decoder") == "ByteLevel")
      r.unsupported("a ByteLevel decoder without a ByteLevel pre-tokenizer");
    r.sentencepiece_decoder(dec, sp.decoder);
    sp.byte_fallback = opt.byte_fallback;
    sp.fuse_unk = opt.fuse_unk;
    if (opt.unk_token) {
      const auto it = vocab.find(*opt.unk_token);
      if (it == vocab.end()) r.bad("the unk_token \"" + excerpt(*opt.unk_token) + "\" is not in the vocabulary");
      sp.unk_id = it->second;
    }
  } else {
    if (opt.byte_fallback) r.unsupported("a BPE model with \"byte_fallback\": true behind a ByteLevel pre-tokenizer");
    bool byte_level = false;
    r.pre_tokenizer(pre, out.spec.splitter, byte_level);
    if (!byte_level) r.unsupported("a pre-tokenizer without ByteLevel (byte-level BPE needs it last)");
    r.byte_level_decoder(dec);
  }
  out.spec.added = r.added_tokens(j.contains("added_tokens") ? j["added_tokens"] : json(), vocab);
  // A normalized added token is matched, and decoded, as its normalized content (tokenizers'
  // normalized_cache).
  for (AddedToken& a : out.spec.added)
    if (a.normalized) a.content = out.spec.normalizer(a.content);

  // Ids: the vocabulary's, then the added tokens'; the bytes each stands for.
  uint32_t size = 0;
  for (const auto& [key, id] : vocab) size = std::max(size, id + 1);
  for (const AddedToken& a : out.spec.added) size = std::max(size, a.id + 1);
  const size_t listed = vocab.size() + out.spec.added.size();
  if (size > 2 * listed + 1024)  // a few unused ids are fine; a table of mostly holes is not
    r.bad("token ids go up to " + std::to_string(size - 1) + " for only " + std::to_string(listed) +
          " tokens; the file is garbled");
  BpeModel& m = out.model;
  m.tokens.assign(size, std::string());
  std::vector<bool> in_bpe(size, false), seen(size, false);
  SentencePieceSpec* sp = out.spec.sentencepiece ? &*out.spec.sentencepiece : nullptr;
  if (sp) sp->pieces.assign(size, std::string());
  for (const auto& [key, id] : vocab) {
    if (seen[id]) r.bad("the vocabulary gives id " + std::to_string(id) + " to two tokens");
    seen[id] = true;
    if (sp) {
      sp->pieces[id] = key;
      m.tokens[id] = sp->decoder.token_text(key);
      in_bpe[id] = true;
    } else if (auto bytes = alphabet_to_bytes(key)) {
      m.tokens[id] = std::move(*bytes);
      in_bpe[id] = true;
    } else {
      m.tokens[id] = key;
    }
  }
  for (const AddedToken& a : out.spec.added) {
    if (sp) {
      sp->pieces[a.id] = a.content;
      m.tokens[a.id] = sp->decoder.token_text(a.content);
    } else {
      m.tokens[a.id] = token_bytes_of(a.content);
    }
  }
  for (uint32_t id = 0; id < size; ++id)
    if (!in_bpe[id]) m.special_ids.push_back(id);

  // Merges by id; a pair listed twice keeps its last rank (tokenizers builds a map).
  std::set<std::pair<uint32_t, uint32_t>> later;
  std::vector<std::pair<uint32_t, uint32_t>> reversed;
  for (size_t r_ = merge_keys.size(); r_-- > 0;) {
    const auto& [a, b] = merge_keys[r_];
    const auto ia = vocab.find(a), ib = vocab.find(b), iab = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || iab == vocab.end())
      r.bad("merge " + std::to_string(r_) + " (\"" + excerpt(a) + "\", \"" + excerpt(b) +
            "\") uses or makes a token missing from the vocabulary; the file is garbled");
    if (!in_bpe[ia->second] || !in_bpe[ib->second] || !in_bpe[iab->second])
      r.unsupported("merge " + std::to_string(r_) + " of tokens outside the byte alphabet (not byte-level BPE)");
    if (later.emplace(ia->second, ib->second).second) reversed.emplace_back(ia->second, ib->second);
  }
  m.merges.assign(reversed.rbegin(), reversed.rend());

  const auto token_id = [&](const std::string& t) -> std::optional<uint32_t> {
    for (const AddedToken& a : out.spec.added)
      if (a.content == t) return a.id;
    if (auto it = vocab.find(t); it != vocab.end()) return it->second;
    return std::nullopt;
  };
  bool template_seen = false;
  r.post_processor(j.contains("post_processor") ? j["post_processor"] : json(), token_id, out.spec, template_seen);
  return out;
}

namespace {

// A config's token id field: an id, a list of ids, or null / absent (nothing).
std::vector<uint32_t> config_ids(const json& cfg, const char* key, const fs::path& file) {
  if (!cfg.is_object() || !cfg.contains(key) || cfg[key].is_null()) return {};
  const json& v = cfg[key];
  std::vector<uint32_t> ids;
  for (const json& e : v.is_array() ? v : json::array({v})) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= (int64_t{1} << 31))
      throw Error(file.string() + ": \"" + key + "\" is " + json_excerpt(v) + "; expected a token id or a list of them.");
    ids.push_back(e.get<uint32_t>());
  }
  return ids;
}

}  // namespace

void read_hf_special_ids(const fs::path& dir, const BpeModel& model, TokenizerSpec& spec) {
  std::vector<uint32_t> bos, eos, pad;
  for (const char* name : {"config.json", "generation_config.json"}) {
    const fs::path file = dir / name;
    if (!fs::is_regular_file(file)) continue;
    const json cfg = io::read_hf_json(file, "Hugging Face config");
    if (auto ids = config_ids(cfg, "bos_token_id", file); !ids.empty()) bos = ids;
    if (auto ids = config_ids(cfg, "eos_token_id", file); !ids.empty()) eos = ids;
    if (auto ids = config_ids(cfg, "pad_token_id", file); !ids.empty()) pad = ids;
  }
  const fs::path tc = dir / "tokenizer_config.json";
  if ((bos.empty() || eos.empty() || pad.empty()) && fs::is_regular_file(tc)) {
    const json cfg = io::read_hf_json(tc, "tokenizer config");
    auto lookup = [&](const char* key) -> std::vector<uint32_t> {
      if (!cfg.is_object() || !cfg.contains(key)) return {};
      const json& v = cfg[key];
      const json& content = v.is_object() && v.contains("content") ? v["content"] : v;
      if (!content.is_string()) return {};
      const std::string text = content.get<std::string>();
      for (const AddedToken& a : spec.added)
        if (a.content == text) return {a.id};
      if (spec.sentencepiece) {
        const auto& pieces = spec.sentencepiece->pieces;
        for (uint32_t id = 0; id < pieces.size(); ++id)
          if (pieces[id] == text) return {id};
        return {};
      }
      const std::string bytes = token_bytes_of(text);
      for (uint32_t id = 0; id < model.tokens.size(); ++id)
        if (model.tokens[id] == bytes) return {id};
      return {};
    };
    if (bos.empty()) bos = lookup("bos_token");
    if (eos.empty()) eos = lookup("eos_token");
    if (pad.empty()) pad = lookup("pad_token");
  }
  spec.bos_id = bos.empty() ? std::nullopt : std::optional<uint32_t>(bos.front());
  spec.eos_ids = eos;
  spec.pad_id = pad.empty() || pad.front() >= model.tokens.size() ? std::nullopt : std::optional<uint32_t>(pad.front());
}

Tokenizer load_hf_tokenizer(const fs::path& dir) {
  const fs::path file = dir / "tokenizer.json";
  auto parts = parse_hf_tokenizer_json(read_whole_file(file, "tokenizer file"), "tokenizer file " + file.string());
  read_hf_special_ids(dir, parts.model, parts.spec);
  return Tokenizer(std::move(parts.model), std::move(parts.spec));
}

}  // namespace magellano::data
