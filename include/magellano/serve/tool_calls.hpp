// Tool calls in a chat model's reply, read back into OpenAI's message.tool_calls. Each template
// family writes them its own way; the syntax is chosen once per template from markers in its
// source (tool_call_syntax):
//   hermes      the source has "<tool_call>": Qwen2.5, Hermes, Granite 4.0. Reply: optional text,
//               then one or more <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
//               (the closing tag of the last one may be missing: the model stopped at its
//               end-of-turn token instead).
//   llama3_json the source has "<|python_tag|>" (Llama 3.1 / 3.2 / 3.3): the whole reply (after an
//               optional <|python_tag|>) is {"name": ..., "parameters": {...}} (or "arguments"),
//               several separated by ";".
//   mistral     the source has "[TOOL_CALLS]": optional text, then [TOOL_CALLS] and a JSON list of
//               {"name": ..., "arguments": {...}} (v3 tokenizers), or [TOOL_CALLS]name[ARGS]{...}
//               once per call (v11 tokenizers: Mistral Small 3.2, Magistral).
//   none        anything else: replies are plain text.
// A reply that does not parse completely (bad JSON, no name, arguments not an object, text where
// the syntax allows none) is plain content: no tool calls, nothing lost.
#pragma once
#include <string>
#include <vector>

namespace magellano::serve {

enum class ToolCallSyntax { none, hermes, llama3_json, mistral };

// The syntax of a template, from its Jinja source. name: "hermes", ... for messages and docs.
ToolCallSyntax tool_call_syntax(const std::string& template_source);
const char* tool_call_syntax_name(ToolCallSyntax s);

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object as compact text (OpenAI sends arguments as a string)
};

struct ParsedReply {
  std::string content;  // the text outside the calls, trimmed of surrounding whitespace when there
                        // are calls; the whole reply unchanged when there are none
  std::vector<ToolCall> calls;
};

ParsedReply parse_tool_calls(ToolCallSyntax syntax, const std::string& reply);

}  // namespace magellano::serve
