// llama.cpp's SPM ("llama") tokenizer on one stretch of raw text, written for the tests from
// src/llama-vocab.cpp (llm_tokenizer_spm_session) independently of Magellano's tokenizers: with
// add_space_prefix a ' ' first, every ' ' as "▁", UTF-8 characters as symbols, then the adjacent
// pair whose joined text is a token of the highest score (leftmost on ties) is joined until none is
// left; a symbol that is no token is split back along its joins, and characters that are no token
// become their "<0xXX>" tokens. tokens / scores: a GGUF's tokenizer.ggml.tokens / .scores.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mgtest {

std::vector<uint32_t> llama_spm_tokenize(const std::vector<std::string>& tokens, const std::vector<double>& scores,
                                         std::string_view text, bool add_space_prefix);

}  // namespace mgtest
