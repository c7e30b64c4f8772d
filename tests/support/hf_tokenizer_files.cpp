#include "hf_tokenizer_files.hpp"

#include <fstream>
#include <sstream>

#include "magellano/data/hf_tokenizer_json.hpp"
#include "project_files.hpp"

namespace mgtest {
using nlohmann::json;
namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json added(int id, const std::string& content, bool special) {
  return {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},  {"normalized", !special}, {"special", special}};
}

nlohmann::json byte_level(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

}  // namespace

nlohmann::json gpt2_tokenizer_json(bool legacy_merges) {
  const auto dir = shared_data() / "gpt2";
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream lines(read_text(dir / "vocab.bpe"));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (legacy_merges) merges.push_back(line);
    else merges.push_back({line.substr(0, sp), line.substr(sp + 1)});
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", {added(50256, "<|endoftext|>", true)}},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level(false, true)},
          {"post_processor", byte_level(true, true)},
          {"decoder", byte_level(true, true)},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", nlohmann::json::parse(read_text(dir / "encoder.json"))},
            {"merges", std::move(merges)}}}};
}

nlohmann::json gpt4_style_tokenizer_json() {
  nlohmann::json j = gpt2_tokenizer_json();
  j["added_tokens"] = {added(50256, "<|endoftext|>", true), added(50257, "<|start_of_role|>", true),
                       added(50258, "<|end_of_role|>", true), added(50259, "  ", false)};
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", kGpt4Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                          byte_level(false, false)}}};
  const json bos_piece = {{"SpecialToken", {{"id", "<|start_of_role|>"}, {"type_id", 0}}}};
  const json text_piece = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  json specials;
  specials["<|start_of_role|>"] = {{"id", "<|start_of_role|>"}, {"ids", {50257}}, {"tokens", {"<|start_of_role|>"}}};
  const json template_processing = {{"type", "TemplateProcessing"},
                                    {"single", json::array({bos_piece, text_piece})},
                                    {"pair", json::array()},
                                    {"special_tokens", specials}};
  j["post_processor"] = {{"type", "Sequence"}, {"processors", json::array({byte_level(true, false), template_processing})}};
  return j;
}

void write_tokenizer_json(const std::filesystem::path& dir, const nlohmann::json& j) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json", std::ios::binary) << j.dump(2);
}

magellano::data::Tokenizer tokenizer_from_json(const json& j) {
  auto parts = magellano::data::parse_hf_tokenizer_json(j.dump(), "test tokenizer.json");
  return magellano::data::Tokenizer(std::move(parts.model), std::move(parts.spec));
}

}  // namespace mgtest
