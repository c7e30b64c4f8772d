#include "magellano/io/json_file.hpp"

#include "magellano/io/atomic_file.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"

namespace magellano::io {

void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j,
                           int indent) {
  std::string text;
  try {
    text = j.dump(indent) + "\n";
  } catch (const nlohmann::json::exception& e) {  // a string that is not valid UTF-8
    throw Error("cannot write " + path.string() + ": " + json_error_text(e));
  }
  write_file_atomically(path, text);
}

nlohmann::json read_json(const std::filesystem::path& path, const std::string& what) {
  return parse_json(read_whole_file(path, what), what + " " + path.string(),
                    " Fix the file or write it again.");
}

}  // namespace magellano::io
