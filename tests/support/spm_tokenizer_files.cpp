#include "spm_tokenizer_files.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "magellano/data/byte_alphabet.hpp"
#include "magellano/data/unicode_class.hpp"
#include "project_files.hpp"

namespace mgtest {
using nlohmann::json;
namespace {

const std::string kMeta = "\xE2\x96\x81";

json added(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", !special}, {"special", special}};
}

std::string byte_token(int b) {
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", b);
  return name;
}

json replace(const std::string& from, const std::string& to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

// The file around a vocabulary and merges.
json spm_file(const SpmStyle& style, json vocab, json merges, json added_tokens) {
  json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", std::move(added_tokens)}};
  const json metaspace = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", style.prepend_scheme},
                          {"split", style.split}};
  if (style.legacy) {
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", kMeta}}, replace(" ", kMeta)}}};
    j["pre_tokenizer"] = nullptr;
  } else {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = metaspace;
  }
  json specials;
  specials["<s>"] = {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"pair", json::array()},
                         {"special_tokens", specials}};
  if (style.metaspace_decoder)
    j["decoder"] = metaspace;
  else
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders",
                     {replace(kMeta, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["model"] = {{"type", "BPE"},         {"dropout", nullptr},       {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},      {"byte_fallback", true},    {"ignore_merges", false},
                {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
  return j;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += magellano::data::decode_utf8(p + i, p + s.size(), &cp);
    if (cp == magellano::data::kInvalidCodePoint) return false;
  }
  return true;
}

}  // namespace

json spm_tokenizer_json(const SpmStyle& style) {
  json vocab = json::object();
  int next = 0;
  for (const char* t : {"<unk>", "<s>", "</s>"}) vocab[t] = next++;
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = next++;
  for (const std::string& c : {kMeta, std::string("e"), std::string("t"), std::string("h"), std::string("l"),
                               std::string("o"), std::string("a"), std::string("n"), std::string("r"), std::string("s"),
                               std::string("d"), std::string("w"), std::string("H"), std::string("\xC3\xA9")})
    vocab[c] = next++;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {kMeta, "t"}, {"h", "e"}, {kMeta + "t", "he"}, {"l", "l"},   {"e", "ll"},         {"H", "ell"},
      {"Hell", "o"}, {kMeta, "w"}, {"o", "r"},  {kMeta + "w", "or"}, {"l", "d"},       {kMeta + "wor", "ld"},
      {kMeta, kMeta}, {"a", "n"},  {kMeta, "an"}, {kMeta, "a"},      {kMeta + "a", "n"}};
  json list = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    list.push_back({a, b});
  }
  return spm_file(style, vocab, list,
                  {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true),
                   added(289, "<|im_start|>", true), added(290, "<tool>", false)});
}

json spm_from_gpt2_tokenizer_json() {
  const json encoder = json::parse(read_text(shared_data() / "gpt2" / "encoder.json"));
  // GPT-2 id order, as the SentencePiece scores' order.
  std::vector<std::pair<int, std::string>> by_id;
  for (const auto& [key, id] : encoder.items()) {
    const auto bytes = magellano::data::alphabet_to_bytes(key);
    if (!bytes || bytes->empty() || !valid_utf8(*bytes) || bytes->find("<|") == 0) continue;
    std::string piece;
    for (char c : *bytes) piece += c == ' ' ? kMeta : std::string(1, c);
    by_id.emplace_back(id.get<int>(), piece);
  }
  std::sort(by_id.begin(), by_id.end());
  json vocab = json::object();
  std::unordered_map<std::string, int> ids;
  int next = 0;
  auto add = [&](const std::string& t) {
    if (ids.emplace(t, next).second) vocab[t] = next++;
  };
  for (const char* t : {"<unk>", "<s>", "</s>"}) add(t);
  for (int b = 0; b < 256; ++b) add(byte_token(b));
  for (const auto& [id, piece] : by_id) add(piece);
  json merges = json::array();
  for (const auto& [id, piece] : by_id) {
    std::vector<std::tuple<int, int, std::string, std::string>> local;
    const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
    for (size_t i = 0; i < piece.size();) {
      uint32_t cp;
      i += magellano::data::decode_utf8(p + i, p + piece.size(), &cp);
      if (i >= piece.size()) break;
      const std::string l = piece.substr(0, i), r = piece.substr(i);
      const auto il = ids.find(l), ir = ids.find(r);
      if (il != ids.end() && ir != ids.end()) local.emplace_back(il->second, ir->second, l, r);
    }
    std::sort(local.begin(), local.end());
    for (const auto& [a, b, l, r] : local) merges.push_back({l, r});
  }
  return spm_file(SpmStyle{}, vocab, merges, {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)});
}

}  // namespace mgtest
