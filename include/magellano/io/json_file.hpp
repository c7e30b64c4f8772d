// JSON files (configs, trainer state, checkpoint manifests): written atomically, read with
// errors that name the file and, for malformed JSON, the parser's line and column.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace magellano::io {

// Writes j (pretty-printed with `indent` spaces, a trailing newline) to path via a temp file,
// fsync and rename. Throws magellano::Error on an I/O failure.
void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j,
                           int indent = 2);

// Parses the whole file. Throws magellano::Error naming `what` and the path when the file is
// missing or unreadable, or is not valid JSON ("... at line 3, column 7: ...").
nlohmann::json read_json(const std::filesystem::path& path, const std::string& what = "JSON file");

// A JSON library error's message without its "[json.exception.parse_error.101] " prefix, e.g.
// "parse error at line 1, column 2: syntax error while parsing value - invalid literal; ...".
std::string json_error_text(const nlohmann::json::exception& e);

}  // namespace magellano::io
