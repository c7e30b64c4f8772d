// Hugging Face tokenizer.json files for tests, built from ../shared/data/gpt2 in the format that
// `tokenizers` writes (serialization.rs): GPT-2's own, and a GPT-4 / Llama-3 style one (a Split
// regex then ByteLevel without its regex, chat special tokens, a BOS template) on the same
// vocabulary. Nothing is copied into the repository: the files go to a temporary folder.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "magellano/data/tokenizer.hpp"

namespace mgtest {

// The cl100k / Llama-3 / Granite 4.0 pre-tokenizer pattern.
inline const char* const kGpt4Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// GPT-2's tokenizer.json as Hugging Face's "gpt2" repository has it: ByteLevel pre-tokenizer,
// post-processor and decoder, <|endoftext|> (50256) as the one added token. legacy_merges: merges
// as "a b" strings (tokenizers < 0.20) instead of ["a", "b"] pairs.
nlohmann::json gpt2_tokenizer_json(bool legacy_merges = false);

// The same vocabulary behind Sequence[Split(kGpt4Pattern, Isolated), ByteLevel(use_regex false)],
// added tokens <|endoftext|> 50256, <|start_of_role|> 50257, <|end_of_role|> 50258 (special) and
// "  " 50259 (not special, normalized), and the template "<|start_of_role|> $A".
nlohmann::json gpt4_style_tokenizer_json();

// The Tokenizer a tokenizer.json document describes (parse_hf_tokenizer_json, in memory).
magellano::data::Tokenizer tokenizer_from_json(const nlohmann::json& j);

// Writes dir/tokenizer.json.
void write_tokenizer_json(const std::filesystem::path& dir, const nlohmann::json& j);

}  // namespace mgtest
