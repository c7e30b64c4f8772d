// The values a Jinja template computes with, modelled on the Python objects that jinja2 sees when
// transformers renders a chat template: None, bool, int, float, str (UTF-8; indexed, sliced and
// measured by code point as Python does), list / tuple, dict (insertion-ordered, string keys),
// callables (macros, raise_exception, strftime_now, bound methods), and Jinja's Undefined (a
// missing variable, key or attribute: prints as "", is false, iterates as empty; any attribute or
// item of it is an error naming it). A namespace() is a dict whose attributes may be assigned.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace magellano::chat::jinja {

// A template that cannot be parsed or rendered. The message names the construct and, where the
// template is at fault, "line L, column C" of the template source.
struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value;
using List = std::vector<Value>;
struct Dict {
  std::vector<std::pair<std::string, Value>> items;  // insertion order
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};
// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* keyword(const std::string& name) const;
};
using Function = std::function<Value(CallArgs&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // String; for Undefined: the name that was missing (for messages)
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Function> fn;
  bool tuple = false;      // a List written as a tuple (repr with parentheses)
  bool is_namespace = false;  // a Dict from namespace(): attributes may be set

  static Value undefined(std::string name = "") { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.kind = Kind::None; return v; }
  static Value boolean(bool x) { Value v; v.kind = Kind::Bool; v.b = x; return v; }
  static Value integer(int64_t x) { Value v; v.kind = Kind::Int; v.i = x; return v; }
  static Value real(double x) { Value v; v.kind = Kind::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.kind = Kind::String; v.s = std::move(x); return v; }
  static Value list_of(List x, bool as_tuple = false);
  static Value dict_of(Dict x);
  static Value function(Function f);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool truthy() const;
  double as_double() const;  // numbers only
};

// JSON (a request's messages and tools, a test's context) as values; object key order is kept.
Value from_json(const nlohmann::ordered_json& j);

// Python's str(v) (what {{ v }} prints) and repr(v) (how a value prints inside a list or dict).
std::string str(const Value& v);
std::string repr(const Value& v);
// Python's json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=False) as transformers'
// tojson filter calls it; indent < 0: one line with ", " and ": " separators.
std::string to_json_text(const Value& v, int indent);

// Python's ==.
bool equal(const Value& a, const Value& b);
// Python's <, for numbers, strings and lists; throws TemplateError for other types.
bool less(const Value& a, const Value& b);
// A Python type name for messages ("str", "int", "list", "dict", "undefined", ...).
std::string type_name(const Value& v);

// Code points of UTF-8 text and back (invalid bytes pass through as U+FFFD).
std::u32string to_u32(const std::string& s);
std::string to_utf8(const std::u32string& s);

}  // namespace magellano::chat::jinja
