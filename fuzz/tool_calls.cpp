// A chat model's reply read for tool calls (serve/tool_calls.hpp): the model's output is not
// trusted. Input: one byte choosing the syntax (hermes, llama3_json, mistral, none by its value
// mod 4), then the reply. Any reply must parse without an exception; with no calls found the
// content is the reply unchanged, and every call found has a non-empty name and arguments that
// are a JSON object's text.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "magellano/serve/tool_calls.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using magellano::serve::ToolCallSyntax;
  if (size == 0) return 0;
  static const ToolCallSyntax syntaxes[] = {ToolCallSyntax::hermes, ToolCallSyntax::llama3_json, ToolCallSyntax::mistral,
                                            ToolCallSyntax::none};
  const std::string reply(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto p = magellano::serve::parse_tool_calls(syntaxes[data[0] % 4], reply);
  if (p.calls.empty() && p.content != reply) std::abort();
  for (const auto& c : p.calls) {
    if (c.name.empty()) std::abort();
    const auto args = nlohmann::json::parse(c.arguments, nullptr, false);
    if (!args.is_object()) std::abort();
  }
  return 0;
}
