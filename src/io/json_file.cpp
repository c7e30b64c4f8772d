#include "magellano/io/json_file.hpp"

#include "magellano/io/atomic_file.hpp"
#include "magellano/runtime/error.hpp"

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

std::string json_error_text(const nlohmann::json::exception& e) {
  std::string msg = e.what();
  if (const auto p = msg.find("] "); msg.rfind("[json.exception", 0) == 0 && p != std::string::npos)
    msg = msg.substr(p + 2);
  return msg;
}

nlohmann::json read_json(const std::filesystem::path& path, const std::string& what) {
  const std::string text = read_whole_file(path, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(what + " " + path.string() + " is not valid JSON: " + json_error_text(e) +
                ". Fix the file or write it again.");
  }
}

}  // namespace magellano::io
