// The one entry point for JSON a user gives us (configs and --set values, checkpoint and trainer
// state files, safetensors headers, Hugging Face configs, tokenizer files, NF4 quant states, GEMM
// tuning files). Parsing is bounded: nesting deeper than max_depth and a key repeated in one
// object are errors, so no later step (copying, printing, walking a value) can recurse without
// bound, and no value silently replaces another. Errors are one line naming the input.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace magellano {

// Nothing Magellano reads nests deeper than a few levels (a config: 3; a safetensors header: 3).
inline constexpr int kMaxJsonDepth = 64;

struct JsonSyntax {
  bool comments = false;  // allow // and /* */ comments (training configs)
  int max_depth = kMaxJsonDepth;
};

// Parses `text`. Throws magellano::Error "<what> is not valid JSON: parse error at line 3,
// column 7: ...", "<what> nests arrays and objects more than 64 deep ..." or "<what> has the key
// "k" twice in one object ...", each followed by `hint` (e.g. " Fix the file.").
nlohmann::json parse_json(std::string_view text, const std::string& what, const std::string& hint = "",
                          JsonSyntax syntax = {});

// A JSON library error's message without its "[json.exception.parse_error.101] " prefix and with
// the text it quotes ("last read: '...'") cut short, e.g. "parse error at line 1, column 2:
// syntax error while parsing value - invalid literal; last read: 'oo'".
std::string json_error_text(const nlohmann::json::exception& e);

// A value as it may appear in an error line: compact JSON, invalid UTF-8 replaced, cut to
// max_chars (excerpt()).
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 80);

}  // namespace magellano
