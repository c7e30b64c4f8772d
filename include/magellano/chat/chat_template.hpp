// A model folder's chat template, found where transformers looks for it, and a conversation
// rendered with it as transformers' apply_chat_template(tokenize=False) does.
//
// Where (first found wins, as in transformers, where chat_template.jinja clobbers the others):
//   1. chat_template.jinja                    the template text (newer transformers write this)
//   2. chat_template.json                     {"chat_template": "..."} (processors)
//   3. tokenizer_config.json "chat_template"  a string, or a list of {"name", "template"}: then
//      "default" is used, and "tool_use" instead when the request gives tools and that name
//      exists (transformers' rule); other names are listed in ChatTemplate::unused_names.
// Special tokens: bos_token, eos_token, unk_token, pad_token from tokenizer_config.json, else
// special_tokens_map.json; each a string or an AddedToken object {"content": "...", ...}.
//
// Variables of a render: messages, tools (None unless given), documents (None),
// add_generation_prompt, and the special tokens above (undefined when the folder has none).
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "magellano/chat/jinja_template.hpp"

namespace magellano::chat {

struct ChatTemplate {
  std::string origin;  // the file it came from, e.g. "DIR/tokenizer_config.json"
  std::shared_ptr<const jinja::Template> main;      // "default" (or the only one)
  std::shared_ptr<const jinja::Template> tool_use;  // a "tool_use" template, if any
  std::string main_source, tool_use_source;         // their Jinja text
  std::vector<std::string> unused_names;            // other named templates (not used)
  std::map<std::string, std::string> special_tokens;  // bos_token, eos_token, ... as found
};

// The chat template of `dir`, or nullopt when it has none. Throws jinja::TemplateError for a
// template that does not parse (naming the file), magellano::Error for a file that is not valid
// JSON or has a chat_template of the wrong shape.
std::optional<ChatTemplate> load_chat_template(const std::filesystem::path& dir);

// The prompt text. messages: a JSON list of {"role", "content", ...} as the client sent them
// (content a string, or a list of parts, passed to the template as they are); tools: null or a
// list. Throws jinja::TemplateError (raise_exception's message as the template wrote it).
std::string render_chat(const ChatTemplate& t, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools, bool add_generation_prompt);

// The Jinja text of the template render_chat uses with tools (non-null) or without.
const std::string& chosen_source(const ChatTemplate& t, bool with_tools);

}  // namespace magellano::chat
