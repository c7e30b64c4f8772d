// Helpers shared by the filters (jinja_filters.cpp) and the tests, methods and globals
// (jinja_builtins.cpp): argument reading, Python's text operations on UTF-8, iteration.
// Errors are BuiltinError (jinja_builtins.hpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "magellano/chat/jinja_value.hpp"

namespace magellano::chat::jinja::text {

[[noreturn]] void fail(const std::string& m);

// Argument k by position or by name; nullptr when neither was given.
const Value* arg(const CallArgs& a, size_t k, const char* name);
// The same as a string / integer / truth value (dflt when absent or None); fn names the caller.
std::string str_arg(const CallArgs& a, size_t k, const char* name, const char* fn, const std::string& dflt = "");
int64_t int_arg(const CallArgs& a, size_t k, const char* name, const char* fn, int64_t dflt);
bool bool_arg(const CallArgs& a, size_t k, const char* name, bool dflt);
const std::string& need_string(const Value& v, const char* fn);

// The elements a for loop or a filter iterates: a list's items, a dict's keys, a string's
// characters, nothing for Undefined; nullopt for anything else.
std::optional<List> elements(const Value& v);
// The same, failing with "fn: '<type>' object is not iterable".
List iterate(const Value& v, const char* fn);

bool is_space(char32_t c);  // Python's str.isspace for one code point
// Letter case of ASCII letters (other bytes as they are); title: Python's str.title.
std::string upper(const std::string& s);
std::string lower(const std::string& s);
std::string capitalize(const std::string& s);
std::string title(const std::string& s);
// Python's str.replace (count < 0: all) and str.split (sep nullopt: runs of whitespace).
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count);
List split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::string py_strip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right);
// jinja2's attribute getter for map / selectattr / sort: "a.b.0" walks dict keys and list indices.
Value attribute_of(const Value& v, const std::string& path);

}  // namespace magellano::chat::jinja::text
