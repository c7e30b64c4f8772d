// The Jinja renderer of chat templates (chat/jinja_*.hpp) and the template files of a model
// folder (chat/chat_template.hpp).
//
// Reference: tests/fixtures/chat_templates/cases.json, written by scripts/chat_template_fixtures.py
// with Python's jinja2 configured as transformers renders chat templates. Each case is a real
// template (Qwen2.5 / ChatML, Llama-3.1, Mistral [INST], Gemma, Zephyr, Granite 4.0) with a
// conversation, or a small template for one construct. Tolerance: none, the text must be equal
// byte for byte; a case where jinja2 failed must fail here too (raise_exception's message equal).
// The broken variant: the same templates lexed without lstrip_blocks (or trim_blocks) must differ
// from the reference, so the fixtures do catch a whitespace rule gone wrong.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "project_files.hpp"
#include "temp_dir.hpp"
#include "magellano/chat/chat_template.hpp"
#include "magellano/chat/jinja_builtins.hpp"
#include "magellano/runtime/error.hpp"

using namespace magellano::chat;
using nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const ordered_json& cases() {
  static const ordered_json c = ordered_json::parse(read_file(mgtest::fixture_file("chat_templates/cases.json")))["cases"];
  return c;
}

std::string source_of(const ordered_json& c) {
  if (c.contains("template")) return c["template"].get<std::string>();
  return read_file(mgtest::fixture_file("chat_templates/templates/" + c["template_file"].get<std::string>()));
}

jinja::Dict vars_of(const ordered_json& c) {
  const jinja::Value v = jinja::from_json(c["variables"]);
  return *v.dict;
}

// The rendered text, or "error: <message>".
std::string run(const ordered_json& c, const jinja::LexOptions& options = {}) {
  try {
    return jinja::Template(source_of(c), options).render(vars_of(c));
  } catch (const jinja::TemplateError& e) {
    return std::string("error: ") + e.what();
  }
}

std::string render(const std::string& source, const ordered_json& vars = ordered_json::object()) {
  return jinja::Template(source).render(*jinja::from_json(vars).dict);
}

std::string error_of(const std::string& source, const ordered_json& vars = ordered_json::object()) {
  try {
    render(source, vars);
  } catch (const jinja::TemplateError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(ChatTemplate, EveryCaseMatchesJinja2) {
  ASSERT_GE(cases().size(), 90u);
  size_t templates = 0, errors = 0;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::string got = run(c);
    if (c.contains("expected")) {
      EXPECT_EQ(got, c["expected"].get<std::string>());
    } else {
      ++errors;
      const std::string want = c["error"].get<std::string>();
      EXPECT_EQ(got.rfind("error: ", 0), 0u) << "jinja2 failed (" << want << ") but we rendered: " << got;
      // raise_exception: the template's own message, exactly as transformers reports it.
      if (want.rfind("TemplateError: ", 0) == 0) EXPECT_EQ(got, "error: " + want.substr(15));
    }
    templates += c.contains("template_file");
  }
  EXPECT_GE(templates, 25u);
  EXPECT_GE(errors, 10u);
}

TEST(ChatTemplate, BrokenWhitespaceRulesAreCaught) {
  // trim_blocks off: the templates with block tags on lines of their own (Zephyr's, and the
  // whitespace cases) change; lstrip_blocks off: those with indented block or comment tags. (The
  // other real templates write {%- everywhere, so lstrip_blocks does not matter to them.)
  std::set<std::string> lstrip_caught, trim_caught;
  for (const auto& c : cases()) {
    if (!c.contains("expected")) continue;
    const std::string want = c["expected"].get<std::string>(), name = c["name"].get<std::string>();
    if (run(c, {true, false}) != want) lstrip_caught.insert(name);
    if (run(c, {false, true}) != want) trim_caught.insert(name);
  }
  for (const char* name : {"ws_lstrip_trim", "ws_comment"}) EXPECT_TRUE(lstrip_caught.count(name)) << name;
  for (const char* name : {"zephyr.jinja:chat", "zephyr.jinja:system", "zephyr.jinja:unicode",
                           "zephyr.jinja:no_generation_prompt", "zephyr.jinja:tools", "ws_lstrip_trim", "ws_crlf"})
    EXPECT_TRUE(trim_caught.count(name)) << name;
}

TEST(ChatTemplate, ErrorsNameTheConstructAndPosition) {
  EXPECT_EQ(error_of("ab\n  {{ x | frobnicate }}"), "chat template: unknown filter 'frobnicate' at line 2, column 10");
  EXPECT_EQ(error_of("{% frobnicate %}"), "chat template: unknown statement {% frobnicate %} at line 1, column 4");
  EXPECT_EQ(error_of("{% include 'x' %}"),
            "chat template: the statement {% include %} is not supported by magellano's chat template renderer at line 1, column 4");
  EXPECT_EQ(error_of("{% if x %}y"), "chat template: missing {% elif %} or {% else %} or {% endif %} before the end of the template at line 1, column 12");
  EXPECT_EQ(error_of("{{ 'x' "), "chat template: a tag {{ that never ends, from line 1, column 1");
  EXPECT_EQ(error_of("{{ x is frob }}"), "chat template: unknown test 'frob' at line 1, column 9");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "chat template: unsupported operand types for +: 'str' and 'int' at line 1, column 8");
  EXPECT_EQ(error_of("{{ m.x.y }}"), "chat template: 'm' is undefined (reading .x) at line 1, column 5");
  EXPECT_EQ(error_of("{{ 'ab' % 1 }}"), "chat template: '%' string formatting is not supported; use ~ or + to join text at line 1, column 9");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.a = 2 %}"),
            "chat template: cannot assign the attribute 'a' of 'x': only a namespace() takes attributes at line 1, column 19");
  EXPECT_EQ(error_of("{{ raise_exception('Roles must alternate') }}"), "Roles must alternate");
  EXPECT_EQ(error_of("{{ [1, 2] | join(', ') | frob }}"), "chat template: unknown filter 'frob' at line 1, column 26");
  EXPECT_EQ(error_of("{{ 1 +* 2 }}"), "chat template: expected a value, found '*' at line 1, column 7");
  EXPECT_EQ(error_of("{{ 'abc }}"), "chat template: a string that never ends, from line 1, column 4");
  EXPECT_EQ(error_of("{{ x $ y }}"), "chat template: unexpected character '$' at line 1, column 6");
  EXPECT_EQ(error_of("{% macro m(a) %}{{ m(1) }}{% endmacro %}{{ m(1) }}"),
            "chat template: macro calls nested deeper than 200 at line 1, column 21");
}

TEST(ChatTemplate, StrftimeNowIsTheLocalTime) {
  // Rendered twice around a reading of the clock, so a minute boundary cannot make it flaky.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::string got = render("{{ strftime_now('%Y-%m-%d %H:%M') }}|{{ strftime_now('%d %b %Y') }}");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char want[64];
    std::strftime(want, sizeof want, "%Y-%m-%d %H:%M|%d %b %Y", &tm);
    if (got == want) return;
  }
  ADD_FAILURE() << "strftime_now differs from strftime of the local time";
}

TEST(ChatTemplate, LongAndEmptyConversations) {
  // Odd sizes: 0, 1 and 1000 messages through the ChatML template.
  const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  for (int n : {0, 1, 1000}) {
    ordered_json msgs = ordered_json::array();
    std::string want;
    for (int k = 0; k < n; ++k) {
      const std::string role = k % 2 ? "assistant" : "user";
      msgs.push_back({{"role", role}, {"content", "m" + std::to_string(k)}});
      want += "<|im_start|>" + role + "\nm" + std::to_string(k) + "<|im_end|>\n";
    }
    EXPECT_EQ(render(chatml, {{"messages", msgs}, {"add_generation_prompt", true}}), want + "<|im_start|>assistant\n");
  }
}

// --- the files of a model folder ---------------------------------------------------------------

namespace {
void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}
const char* kChatML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
}  // namespace

TEST(ChatTemplateFiles, FoundWhereTransformersLooks) {
  mgtest::TempDir dir;
  EXPECT_FALSE(load_chat_template(dir.path()).has_value());
  const ordered_json msgs = ordered_json::array({{{"role", "user"}, {"content", "hi"}}});

  // tokenizer_config.json: a string, with bos / eos as a string and as an AddedToken dict.
  write(dir.path() / "tokenizer_config.json",
        ordered_json({{"chat_template", "{{ bos_token }}[{{ messages[0].content }}]{{ eos_token }}{{ tools is none }}"},
                      {"bos_token", "<s>"},
                      {"eos_token", {{"content", "</s>"}, {"lstrip", false}, {"__type", "AddedToken"}}}})
            .dump());
  auto t = load_chat_template(dir.path());
  ASSERT_TRUE(t);
  EXPECT_EQ(render_chat(*t, msgs, nullptr, true), "<s>[hi]</s>True");
  EXPECT_EQ(t->origin, (dir.path() / "tokenizer_config.json").string());

  // chat_template.json wins over tokenizer_config.json; chat_template.jinja over both.
  write(dir.path() / "chat_template.json", ordered_json({{"chat_template", "json:{{ messages[0].content }}"}}).dump());
  EXPECT_EQ(render_chat(*load_chat_template(dir.path()), msgs, nullptr, true), "json:hi");
  write(dir.path() / "chat_template.jinja", "jinja:{{ messages[0].content }}\n");
  EXPECT_EQ(render_chat(*load_chat_template(dir.path()), msgs, nullptr, true), "jinja:hi");
}

TEST(ChatTemplateFiles, NamedTemplatesUseDefaultOrToolUse) {
  mgtest::TempDir dir;
  write(dir.path() / "tokenizer_config.json",
        ordered_json({{"chat_template", ordered_json::array({{{"name", "rag"}, {"template", "rag"}},
                                                             {{"name", "tool_use"}, {"template", "tools:{{ tools | length }}"}},
                                                             {{"name", "default"}, {"template", kChatML}}})}})
            .dump());
  auto t = load_chat_template(dir.path());
  ASSERT_TRUE(t);
  const ordered_json msgs = ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(render_chat(*t, msgs, nullptr, true), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(*t, msgs, ordered_json::array({{{"type", "function"}}}), true), "tools:1");
  EXPECT_EQ(t->unused_names, std::vector<std::string>{"rag"});
}

TEST(ChatTemplateFiles, BadFilesSayWhat) {
  mgtest::TempDir dir;
  auto message = [&] {
    try {
      load_chat_template(dir.path());
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  write(dir.path() / "tokenizer_config.json", "{not json");
  EXPECT_NE(message().find("tokenizer_config.json is not valid JSON"), std::string::npos) << message();
  write(dir.path() / "tokenizer_config.json", R"({"chat_template": 5})");
  EXPECT_NE(message().find("must be a string or a list"), std::string::npos) << message();
  write(dir.path() / "tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "x"}]})");
  EXPECT_NE(message().find("without one named \"default\""), std::string::npos) << message();
  write(dir.path() / "tokenizer_config.json", R"({"chat_template": "{% if x %}"})");
  EXPECT_NE(message().find("missing {% elif %} or {% else %} or {% endif %}"), std::string::npos) << message();
  EXPECT_NE(message().find("(in " + (dir.path() / "tokenizer_config.json").string() + ")"), std::string::npos) << message();
}

TEST(ChatTemplate, HostileTemplatesFailCleanly) {
  EXPECT_EQ(error_of("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}").rfind("chat template: nesting deeper than 200 levels", 0), 0u);
  EXPECT_EQ(error_of("{{ " + std::string(300, '-') + "1 }}").rfind("chat template: nesting deeper than 200 levels", 0), 0u);
  std::string ifs;
  for (int k = 0; k < 300; ++k) ifs += "{% if true %}";
  EXPECT_EQ(error_of(ifs).rfind("chat template: nesting deeper than 200 levels", 0), 0u);
  EXPECT_EQ(error_of("{{ 9223372036854775807 + 1 }}").rfind("chat template: integer overflow in +", 0), 0u);
  EXPECT_EQ(error_of("{{ 99999999999999999999 }}"),
            "chat template: the integer 99999999999999999999 is larger than 64 bits at line 1, column 4");
  EXPECT_EQ(error_of("{{ 'x' * 100000000 }}").rfind("chat template: a repetition (*) larger than 64 MiB", 0), 0u);
  EXPECT_EQ(error_of("{{ range(10000000) }}").rfind("chat template: range() longer than 100000 items", 0), 0u);
  EXPECT_EQ(render("{{ 2 ** 62 }} {{ 0 ** 5 }} {{ 1 ** 99999999 }} {{ 1e999 }}"), "4611686018427387904 0 1 inf");
  EXPECT_EQ(error_of("{{ 2 ** 64 }}").rfind("chat template: integer overflow in **", 0), 0u);
}
