// A Jinja template as transformers renders chat templates: parsed once (jinja_lexer.hpp,
// jinja_ast.hpp), rendered with variables (jinja_value.hpp) and the builtins of
// jinja_builtins.hpp. Scoping as jinja2's: {% set %} inside a for loop lives for one iteration
// (use namespace() to carry values out), inside if / else it does not; macros see the template's
// top-level variables. Undefined names, keys and attributes are Undefined (see jinja_value.hpp);
// anything else wrong throws TemplateError with the construct and "line L, column C".
#pragma once
#include <string>

#include "magellano/chat/jinja_ast.hpp"

namespace magellano::chat::jinja {

class Template {
 public:
  explicit Template(const std::string& source, const LexOptions& options = {});  // throws TemplateError
  // vars: the template's variables (they shadow the builtin globals).
  std::string render(const Dict& vars) const;

 private:
  Source src_;
  Body body_;
};

}  // namespace magellano::chat::jinja
