#include "magellano/runtime/json_parse.hpp"

#include <unordered_set>
#include <vector>

#include "magellano/runtime/error.hpp"

namespace magellano {

using nlohmann::json;

nlohmann::json parse_json(std::string_view text, const std::string& what, const std::string& hint,
                          JsonSyntax syntax) {
  // The keys seen so far in each object being parsed, innermost last.
  std::vector<std::unordered_set<std::string>> keys;
  const json::parser_callback_t limits = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= syntax.max_depth)
          throw Error(what + " nests arrays and objects more than " + std::to_string(syntax.max_depth) +
                      " deep; no file Magellano reads needs more than a few levels." + hint);
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second)
          throw Error(what + " has the key \"" + excerpt(parsed.get<std::string>()) +
                      "\" twice in one object; remove one." + hint);
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limits, /*allow_exceptions=*/true, syntax.comments);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    throw Error(what + " is not valid JSON: " + json_error_text(e) + "." + hint);
  }
}

std::string json_error_text(const nlohmann::json::exception& e) {
  std::string msg = e.what();
  if (const auto p = msg.find("] "); msg.rfind("[json.exception", 0) == 0 && p != std::string::npos)
    msg = msg.substr(p + 2);
  // The parser quotes the token it stopped at, which can be a whole (huge) string.
  const std::string quote = "last read: '";
  if (const auto q = msg.find(quote); q != std::string::npos && msg.back() == '\'') {
    const std::string token = msg.substr(q + quote.size(), msg.size() - q - quote.size() - 1);
    msg = msg.substr(0, q + quote.size()) + excerpt(token, 40) + "'";
  }
  return excerpt(msg, 400);
}

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  return excerpt(value.dump(-1, ' ', false, json::error_handler_t::replace), max_chars);
}

}  // namespace magellano
