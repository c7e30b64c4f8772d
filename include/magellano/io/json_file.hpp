// JSON files (configs, trainer state, checkpoint manifests): written atomically, read with
// errors that name the file and, for malformed JSON, the parser's line and column. Reading goes
// through runtime/input_file.hpp (regular files only) and runtime/json_parse.hpp (bounded depth,
// no repeated keys).
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "magellano/runtime/json_parse.hpp"

namespace magellano::io {

// Writes j (pretty-printed with `indent` spaces, a trailing newline) to path via a temp file,
// fsync and rename. Throws magellano::Error on an I/O failure.
void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j,
                           int indent = 2);

// Parses the whole file. Throws magellano::Error naming `what` and the path when the file is
// missing, unreadable or not a regular file, or is not valid JSON ("... at line 3, column 7:
// ...") within parse_json's limits.
nlohmann::json read_json(const std::filesystem::path& path, const std::string& what = "JSON file");

}  // namespace magellano::io
