// A chat template and the variables it is rendered with, as `magellano serve` handles them
// (chat/jinja_template.hpp): the template text, a NUL byte, then JSON variables (absent or not a
// JSON object: none). Parsing and rendering either succeed or throw jinja::TemplateError (the
// 400 answer, or the warning at start); anything else (another exception, a crash, a sanitizer
// report, a hang) is a finding. A template that renders renders the same text twice.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "magellano/chat/jinja_template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string source = input.substr(0, nul);
  magellano::chat::jinja::Dict vars;
  if (nul != std::string::npos) {
    const auto j = nlohmann::ordered_json::parse(input.substr(nul + 1), nullptr, false);
    if (j.is_object()) vars = *magellano::chat::jinja::from_json(j).dict;
  }
  try {
    const magellano::chat::jinja::Template t(source);
    std::string first;
    try {
      first = t.render(vars);
    } catch (const magellano::chat::jinja::TemplateError&) {
      return 0;
    }
    if (t.render(vars) != first) std::abort();
  } catch (const magellano::chat::jinja::TemplateError&) {
  }
  return 0;
}
