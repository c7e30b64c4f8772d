// The filters, tests, methods and globals a chat template can call, each as jinja2 / Python
// defines it (transformers' tojson: json.dumps with ensure_ascii=False; raise_exception and
// strftime_now as transformers adds them). Letter case functions (upper, lower, title, capitalize)
// change ASCII letters only.
//   filters: abs, capitalize, count, d, default, e, escape, first, float, indent, int, items, join,
//            last, length, list, lower, map, reject, rejectattr, replace, reverse, round, safe,
//            select, selectattr, sort, string, sum, title, tojson, trim, unique, upper
//   tests:   boolean, callable, defined, divisibleby, eq, equalto, even, false, float, ge, gt, in,
//            integer, iterable, le, lower, lt, mapping, ne, none, number, odd, sameas, sequence,
//            string, true, undefined, upper (and ==, !=, <, <=, >, >=)
//   str:     capitalize, count, endswith, find, isalnum, isalpha, isdigit, islower, isspace,
//            isupper, join, lower, lstrip, replace, rsplit, rstrip, split, splitlines, startswith,
//            strip, title, upper;   dict: get, items, keys, values
//   globals: dict, namespace, range, raise_exception, strftime_now
// Errors are BuiltinError (the renderer adds the template position) or, from raise_exception,
// RaisedError whose message is the template's own text.
#pragma once
#include <optional>
#include <string>

#include "magellano/chat/jinja_value.hpp"

namespace magellano::chat::jinja {

struct BuiltinError : TemplateError {
  using TemplateError::TemplateError;
};
struct RaisedError : TemplateError {
  using TemplateError::TemplateError;
};

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, CallArgs& args);
// A method of a str or dict bound to `obj`, or nullopt when it has none of that name.
std::optional<Value> method(const Value& obj, const std::string& name);
// The globals every template sees.
Dict default_globals();

}  // namespace magellano::chat::jinja
