// The tests, methods and globals of jinja_builtins.hpp (the filters: jinja_filters.cpp).
#include "magellano/chat/jinja_builtins.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>
#include <map>

#include "jinja_text.hpp"

namespace magellano::chat::jinja {

using namespace text;

namespace {

using Test = bool (*)(const Value&, CallArgs&);

// --- tests -----------------------------------------------------------------------------------

const Value& other(const CallArgs& a, const char* test) {
  if (a.pos.empty()) fail(std::string("test '") + test + "' needs an argument");
  return a.pos[0];
}
bool t_defined(const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(const Value& v, CallArgs&) { return v.is_none(); }
bool t_string(const Value& v, CallArgs&) { return v.is_string(); }
bool t_number(const Value& v, CallArgs&) { return v.kind == Value::Kind::Int || v.kind == Value::Kind::Float; }
bool t_integer(const Value& v, CallArgs&) { return v.kind == Value::Kind::Int; }
bool t_float(const Value& v, CallArgs&) { return v.kind == Value::Kind::Float; }
bool t_boolean(const Value& v, CallArgs&) { return v.kind == Value::Kind::Bool; }
bool t_true(const Value& v, CallArgs&) { return v.kind == Value::Kind::Bool && v.b; }
bool t_false(const Value& v, CallArgs&) { return v.kind == Value::Kind::Bool && !v.b; }
bool t_mapping(const Value& v, CallArgs&) { return v.is_dict(); }
bool t_iterable(const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined(); }
bool t_sequence(const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string(); }
bool t_callable(const Value& v, CallArgs&) { return v.kind == Value::Kind::Function; }
bool t_odd(const Value& v, CallArgs&) {
  if (v.kind != Value::Kind::Int) fail("test 'odd' needs an integer, got " + type_name(v));
  return v.i % 2 != 0;
}
bool t_even(const Value& v, CallArgs&) {
  if (v.kind != Value::Kind::Int) fail("test 'even' needs an integer, got " + type_name(v));
  return v.i % 2 == 0;
}
bool t_divisibleby(const Value& v, CallArgs& a) {
  const Value& d = other(a, "divisibleby");
  if (v.kind != Value::Kind::Int || d.kind != Value::Kind::Int || d.i == 0) fail("test 'divisibleby' needs integers (not 0)");
  return v.i % d.i == 0;
}
bool t_eq(const Value& v, CallArgs& a) { return equal(v, other(a, "eq")); }
bool t_ne(const Value& v, CallArgs& a) { return !equal(v, other(a, "ne")); }
bool t_lt(const Value& v, CallArgs& a) { return less(v, other(a, "lt")); }
bool t_le(const Value& v, CallArgs& a) { return !less(other(a, "le"), v); }
bool t_gt(const Value& v, CallArgs& a) { return less(other(a, "gt"), v); }
bool t_ge(const Value& v, CallArgs& a) { return !less(v, other(a, "ge")); }
bool t_in(const Value& v, CallArgs& a) {
  const Value& c = other(a, "in");
  if (c.is_string()) return v.is_string() && c.s.find(v.s) != std::string::npos;
  for (const Value& e : iterate(c, "in"))
    if (equal(e, v)) return true;
  return false;
}
bool t_lower(const Value& v, CallArgs&) { return v.is_string() && lower(v.s) == v.s; }
bool t_upper(const Value& v, CallArgs&) { return v.is_string() && upper(v.s) == v.s; }
bool t_sameas(const Value& v, CallArgs& a) {
  const Value& o = other(a, "sameas");
  if (v.kind != o.kind) return false;
  if (v.is_list()) return v.list == o.list;
  if (v.is_dict()) return v.dict == o.dict;
  return equal(v, o);
}

const std::map<std::string, Test>& tests() {
  static const std::map<std::string, Test> t = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined}, {"divisibleby", t_divisibleby},
      {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq}, {"even", t_even}, {"false", t_false}, {"float", t_float},
      {"ge", t_ge}, {">=", t_ge}, {"gt", t_gt}, {">", t_gt}, {"greaterthan", t_gt}, {"in", t_in},
      {"integer", t_integer}, {"iterable", t_iterable}, {"le", t_le}, {"<=", t_le}, {"lower", t_lower},
      {"lt", t_lt}, {"<", t_lt}, {"lessthan", t_lt}, {"mapping", t_mapping}, {"ne", t_ne}, {"!=", t_ne},
      {"none", t_none}, {"number", t_number}, {"odd", t_odd}, {"sameas", t_sameas}, {"sequence", t_sequence},
      {"string", t_string}, {"true", t_true}, {"undefined", t_undefined}, {"upper", t_upper}};
  return t;
}

// --- methods ---------------------------------------------------------------------------------

bool starts_or_ends(const std::string& s, const Value& what, bool start, const char* fn) {
  List options = what.is_list() && what.tuple ? *what.list : List{what};
  for (const Value& o : options) {
    const std::string& p = need_string(o, fn);
    if (p.size() <= s.size() && (start ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0))
      return true;
  }
  return false;
}

template <class F>
bool all_chars(const std::string& s, F f) {
  const std::u32string u = to_u32(s);
  if (u.empty()) return false;
  for (char32_t c : u)
    if (!f(c)) return false;
  return true;
}

Value string_method(const std::string& s, const std::string& name, CallArgs& a) {
  auto chars = [&]() -> std::optional<std::string> {
    const Value* c = arg(a, 0, "chars");
    if (!c || c->is_none()) return std::nullopt;
    return need_string(*c, name.c_str());
  };
  if (name == "strip") return Value::string(py_strip(s, chars(), true, true));
  if (name == "lstrip") return Value::string(py_strip(s, chars(), true, false));
  if (name == "rstrip") return Value::string(py_strip(s, chars(), false, true));
  if (name == "upper") return Value::string(upper(s));
  if (name == "lower") return Value::string(lower(s));
  if (name == "title") return Value::string(title(s));
  if (name == "capitalize") return Value::string(capitalize(s));
  if (name == "startswith" || name == "endswith") {
    if (a.pos.empty()) fail(name + "() takes a prefix");
    return Value::boolean(starts_or_ends(s, a.pos[0], name == "startswith", name.c_str()));
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = arg(a, 0, "sep");
    const int64_t maxsplit = int_arg(a, 1, "maxsplit", name.c_str(), -1);
    std::optional<std::string> sp;
    if (sep && !sep->is_none()) sp = need_string(*sep, "split");
    if (name == "rsplit" && maxsplit >= 0) {  // split from the right: reverse, split, reverse
      std::u32string u = to_u32(s), us = sp ? to_u32(*sp) : U"";
      std::reverse(u.begin(), u.end());
      std::reverse(us.begin(), us.end());
      List parts = split(to_utf8(u), sp ? std::optional<std::string>(to_utf8(us)) : std::nullopt, maxsplit);
      std::reverse(parts.begin(), parts.end());
      for (Value& p : parts) {
        std::u32string pu = to_u32(p.s);
        std::reverse(pu.begin(), pu.end());
        p.s = to_utf8(pu);
      }
      return Value::list_of(std::move(parts));
    }
    return Value::list_of(split(s, sp, maxsplit));
  }
  if (name == "splitlines") {
    List out;
    size_t p = 0;
    while (p < s.size()) {
      const size_t q = s.find('\n', p);
      if (q == std::string::npos) {
        out.push_back(Value::string(s.substr(p)));
        break;
      }
      out.push_back(Value::string(s.substr(p, q - p)));
      p = q + 1;
    }
    return Value::list_of(std::move(out));
  }
  if (name == "replace") {
    if (a.pos.size() < 2) fail("replace() takes the old and the new text");
    return Value::string(replace_all(s, need_string(a.pos[0], "replace"), need_string(a.pos[1], "replace"),
                                     int_arg(a, 2, "count", "replace", -1)));
  }
  if (name == "join") {
    if (a.pos.empty()) fail("join() takes a list");
    std::string out;
    bool first = true;
    for (const Value& e : iterate(a.pos[0], "join")) {
      if (!first) out += s;
      first = false;
      out += need_string(e, "join");
    }
    return Value::string(out);
  }
  if (name == "find" || name == "count") {
    if (a.pos.empty()) fail(name + "() takes a substring");
    const std::string& sub = need_string(a.pos[0], name.c_str());
    if (name == "find") {
      const size_t p = s.find(sub);
      return Value::integer(p == std::string::npos ? -1 : static_cast<int64_t>(to_u32(s.substr(0, p)).size()));
    }
    if (sub.empty()) return Value::integer(static_cast<int64_t>(to_u32(s).size()) + 1);
    int64_t n = 0;
    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Value::integer(n);
  }
  auto ascii = [](int (*f)(int)) { return [f](char32_t c) { return c < 0x80 && f(static_cast<int>(c)) != 0; }; };
  if (name == "isdigit") return Value::boolean(all_chars(s, ascii(::isdigit)));
  if (name == "isalpha") return Value::boolean(all_chars(s, ascii(::isalpha)));
  if (name == "isalnum") return Value::boolean(all_chars(s, ascii(::isalnum)));
  if (name == "isspace") return Value::boolean(all_chars(s, is_space));
  if (name == "islower") return Value::boolean(lower(s) == s && upper(s) != s);
  if (name == "isupper") return Value::boolean(upper(s) == s && lower(s) != s);
  fail("str has no method '" + name + "'");
}

const char* kStringMethods[] = {"strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize", "startswith",
                                "endswith", "split", "rsplit", "splitlines", "replace", "join", "find", "count",
                                "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"};

}  // namespace

bool has_test(const std::string& name) { return tests().count(name) != 0; }

bool apply_test(const std::string& name, const Value& v, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) fail("unknown test '" + name + "'");
  return it->second(v, args);
}

std::optional<Value> method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    for (const char* m : kStringMethods)
      if (name == m) {
        const std::string s = obj.s;
        return Value::function([s, name](CallArgs& a) { return string_method(s, name, a); });
      }
    return std::nullopt;
  }
  if (obj.is_dict() && !obj.is_namespace) {
    const auto d = obj.dict;
    if (name == "get")
      return Value::function([d](CallArgs& a) {
        if (a.pos.empty()) fail("get() takes a key");
        const Value* v = a.pos[0].is_string() ? d->find(a.pos[0].s) : nullptr;
        return v ? *v : (a.pos.size() > 1 ? a.pos[1] : Value::none());
      });
    if (name == "items")
      return Value::function([d](CallArgs&) {
        List out;
        for (const auto& [k, v] : d->items) out.push_back(Value::list_of({Value::string(k), v}, true));
        return Value::list_of(std::move(out));
      });
    if (name == "keys")
      return Value::function([obj](CallArgs&) { return Value::list_of(iterate(obj, "keys")); });
    if (name == "values")
      return Value::function([d](CallArgs&) {
        List out;
        for (const auto& [k, v] : d->items) out.push_back(v);
        return Value::list_of(std::move(out));
      });
  }
  return std::nullopt;
}

Dict default_globals() {
  Dict g;
  g.set("range", Value::function([](CallArgs& a) {
    int64_t start = 0, stop = 0, step = 1;
    for (const Value& v : a.pos)
      if (v.kind != Value::Kind::Int) fail("range() takes integers, got " + type_name(v));
    if (a.pos.size() == 1) stop = a.pos[0].i;
    else if (a.pos.size() >= 2) start = a.pos[0].i, stop = a.pos[1].i;
    if (a.pos.size() == 3) step = a.pos[2].i;
    if (a.pos.empty() || a.pos.size() > 3) fail("range() takes 1 to 3 integers");
    if (step == 0) fail("range() arg 3 must not be zero");
    const double count = (static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step);
    if (count > 100000) fail("range() longer than 100000 items");
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(Value::integer(k));
    return Value::list_of(std::move(out));
  }));
  auto make_dict = [](bool ns) {
    return [ns](CallArgs& a) {
      Dict d;
      for (const Value& p : a.pos) {
        if (!p.is_dict()) fail(std::string(ns ? "namespace" : "dict") + "() takes a mapping or keyword arguments");
        for (const auto& [k, v] : p.dict->items) d.set(k, v);
      }
      for (const auto& [k, v] : a.kw) d.set(k, v);
      Value v = Value::dict_of(std::move(d));
      v.is_namespace = ns;
      return v;
    };
  };
  g.set("namespace", Value::function(make_dict(true)));
  g.set("dict", Value::function(make_dict(false)));
  g.set("raise_exception", Value::function([](CallArgs& a) -> Value {
    throw RaisedError(a.pos.empty() ? std::string("raise_exception() was called") : str(a.pos[0]));
  }));
  g.set("strftime_now", Value::function([](CallArgs& a) {
    if (a.pos.empty() || !a.pos[0].is_string()) fail("strftime_now() takes a format string");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[512];
    const size_t n = std::strftime(buf, sizeof buf, a.pos[0].s.c_str(), &tm);
    return Value::string(std::string(buf, n));
  }));
  return g;
}

}  // namespace magellano::chat::jinja
