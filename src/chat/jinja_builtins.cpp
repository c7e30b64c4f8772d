#include "magellano/chat/jinja_builtins.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>
#include <map>

namespace magellano::chat::jinja {

namespace {

using Filter = Value (*)(const Value&, CallArgs&);
using Test = bool (*)(const Value&, CallArgs&);

[[noreturn]] void fail(const std::string& m) { throw BuiltinError(m); }

// Argument k by position or by name; nullptr when neither was given.
const Value* arg(const CallArgs& a, size_t k, const char* name) {
  if (k < a.pos.size()) return &a.pos[k];
  return a.keyword(name);
}

std::string str_arg(const CallArgs& a, size_t k, const char* name, const char* fn, const std::string& dflt = "") {
  const Value* v = arg(a, k, name);
  if (!v || v->is_none()) return dflt;
  if (!v->is_string()) fail(std::string(fn) + "(): '" + name + "' must be a string, got " + type_name(*v));
  return v->s;
}

int64_t int_arg(const CallArgs& a, size_t k, const char* name, const char* fn, int64_t dflt) {
  const Value* v = arg(a, k, name);
  if (!v || v->is_none()) return dflt;
  if (v->kind != Value::Kind::Int && v->kind != Value::Kind::Bool)
    fail(std::string(fn) + "(): '" + name + "' must be an integer, got " + type_name(*v));
  return v->kind == Value::Kind::Int ? v->i : v->b;
}

bool bool_arg(const CallArgs& a, size_t k, const char* name, bool dflt) {
  const Value* v = arg(a, k, name);
  return v ? v->truthy() : dflt;
}

const std::string& need_string(const Value& v, const char* fn) {
  if (!v.is_string()) fail(std::string(fn) + " needs a string, got " + type_name(v));
  return v.s;
}

// The elements a filter iterates: a list's items, a dict's keys, a string's characters.
List iterate(const Value& v, const char* fn) {
  switch (v.kind) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return *v.list;
    case Value::Kind::Dict: {
      List keys;
      for (const auto& [k, x] : v.dict->items) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Kind::String: {
      List chars;
      for (char32_t c : to_u32(v.s)) chars.push_back(Value::string(to_utf8(std::u32string(1, c))));
      return chars;
    }
    default: fail(std::string(fn) + ": '" + type_name(v) + "' object is not iterable");
  }
}

bool is_space(char32_t c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x1f || c == 0x85 ||
         c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(const std::string& s) { return ascii_map(s, ::toupper); }
std::string lower(const std::string& s) { return ascii_map(s, ::tolower); }
std::string capitalize(const std::string& s) {
  std::string out = lower(s);
  if (!out.empty() && static_cast<unsigned char>(out[0]) < 0x80) out[0] = static_cast<char>(::toupper(out[0]));
  return out;
}
std::string title(const std::string& s) {  // Python's str.title (ASCII letters)
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (alpha) c = static_cast<char>(prev_cased ? ::tolower(c) : ::toupper(c));
    prev_cased = alpha;
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {  // Python inserts `to` around every character
    std::u32string u = to_u32(s);
    std::string out;
    int64_t n = 0;
    for (size_t k = 0; k <= u.size(); ++k) {
      if (count < 0 || n < count) out += to, ++n;
      if (k < u.size()) out += to_utf8(std::u32string(1, u[k]));
    }
    return out;
  }
  std::string out;
  size_t p = 0;
  int64_t n = 0;
  for (size_t q; (count < 0 || n < count) && (q = s.find(from, p)) != std::string::npos; ++n) {
    out += s.substr(p, q - p) + to;
    p = q + from.size();
  }
  return out + s.substr(p);
}

List split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  List out;
  if (!sep) {
    std::u32string u = to_u32(s);
    size_t k = 0;
    int64_t n = 0;
    while (k < u.size()) {
      while (k < u.size() && is_space(u[k])) ++k;
      if (k >= u.size()) break;
      size_t e = k;
      if (maxsplit >= 0 && n >= maxsplit) {
        size_t end = u.size();
        while (end > k && is_space(u[end - 1])) --end;
        out.push_back(Value::string(to_utf8(u.substr(k, end - k))));
        break;
      }
      while (e < u.size() && !is_space(u[e])) ++e;
      out.push_back(Value::string(to_utf8(u.substr(k, e - k))));
      ++n;
      k = e;
    }
    return out;
  }
  if (sep->empty()) fail("split(): empty separator");
  size_t p = 0;
  int64_t n = 0;
  for (size_t q; (maxsplit < 0 || n < maxsplit) && (q = s.find(*sep, p)) != std::string::npos; ++n) {
    out.push_back(Value::string(s.substr(p, q - p)));
    p = q + sep->size();
  }
  out.push_back(Value::string(s.substr(p)));
  return out;
}

// jinja2's attribute getter for map / selectattr / sort: "a.b.0" walks dict keys and list indices.
Value attribute_of(const Value& v, const std::string& path) {
  Value cur = v;
  size_t p = 0;
  while (p <= path.size()) {
    const size_t q = std::min(path.find('.', p), path.size());
    const std::string part = path.substr(p, q - p);
    if (cur.is_dict()) {
      const Value* x = cur.dict->find(part);
      cur = x ? *x : Value::undefined(part);
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const size_t k = std::stoul(part);
      cur = k < cur.list->size() ? (*cur.list)[k] : Value::undefined(part);
    } else {
      return Value::undefined(part);
    }
    p = q + 1;
  }
  return cur;
}

// --- filters ---------------------------------------------------------------------------------

Value f_trim(const Value& v, CallArgs& a) {
  const Value* c = arg(a, 0, "chars");
  return Value::string(py_strip(str(v), c && c->is_string() ? std::optional<std::string>(c->s) : std::nullopt, true, true));
}

Value f_length(const Value& v, CallArgs&) {
  switch (v.kind) {
    case Value::Kind::String: return Value::integer(static_cast<int64_t>(to_u32(v.s).size()));
    case Value::Kind::List: return Value::integer(static_cast<int64_t>(v.list->size()));
    case Value::Kind::Dict: return Value::integer(static_cast<int64_t>(v.dict->items.size()));
    case Value::Kind::Undefined: return Value::integer(0);
    default: fail("length: object of type '" + type_name(v) + "' has no len()");
  }
}

Value f_tojson(const Value& v, CallArgs& a) {
  for (const auto& [k, x] : a.kw)
    if (k != "indent" && !(k == "ensure_ascii" && !x.truthy()) && !(k == "sort_keys" && !x.truthy()))
      fail("tojson: the argument '" + k + "' is not supported (indent is)");
  const Value* ind = arg(a, 0, "indent");
  int indent = -1;
  if (ind && !ind->is_none()) {
    if (ind->kind != Value::Kind::Int || ind->i < 0) fail("tojson: indent must be an integer >= 0");
    indent = static_cast<int>(ind->i);
  }
  return Value::string(to_json_text(v, indent));
}

Value f_upper(const Value& v, CallArgs&) { return Value::string(upper(str(v))); }
Value f_lower(const Value& v, CallArgs&) { return Value::string(lower(str(v))); }
Value f_capitalize(const Value& v, CallArgs&) { return Value::string(capitalize(str(v))); }
// jinja2's title filter (not str.title): words start after whitespace, '-' or an opening bracket.
Value f_title(const Value& v, CallArgs&) {
  std::string out = str(v);
  bool start = true;
  for (char& c : out) {
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || std::isspace(static_cast<unsigned char>(c));
    if (!sep && static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(start ? ::toupper(c) : ::tolower(c));
    start = sep;
  }
  return Value::string(out);
}

Value f_default(const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default_value");
  const bool boolean = bool_arg(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.truthy())) return d ? *d : Value::string("");
  return v;
}

Value f_join(const Value& v, CallArgs& a) {
  const std::string sep = str_arg(a, 0, "d", "join");
  const Value* attr = arg(a, 1, "attribute");
  std::string out;
  bool first = true;
  for (const Value& e : iterate(v, "join")) {
    if (!first) out += sep;
    first = false;
    out += str(attr ? attribute_of(e, str(*attr)) : e);
  }
  return Value::string(out);
}

Value f_first(const Value& v, CallArgs&) {
  List l = iterate(v, "first");
  return l.empty() ? Value::undefined("first") : l.front();
}
Value f_last(const Value& v, CallArgs&) {
  List l = iterate(v, "last");
  return l.empty() ? Value::undefined("last") : l.back();
}

Value f_items(const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::list_of({});
  if (!v.is_dict()) fail("items: needs a mapping, got " + type_name(v));
  List out;
  for (const auto& [k, x] : v.dict->items) out.push_back(Value::list_of({Value::string(k), x}, true));
  return Value::list_of(std::move(out));
}

Value f_list(const Value& v, CallArgs&) { return Value::list_of(iterate(v, "list")); }

Value f_replace(const Value& v, CallArgs& a) {
  const Value* from = arg(a, 0, "old");
  const Value* to = arg(a, 1, "new");
  if (!from || !to) fail("replace: needs the old and the new text");
  return Value::string(replace_all(str(v), str(*from), str(*to), int_arg(a, 2, "count", "replace", -1)));
}

Value f_string(const Value& v, CallArgs&) { return Value::string(str(v)); }

Value f_int(const Value& v, CallArgs& a) {
  const int64_t dflt = int_arg(a, 0, "default", "int", 0);
  if (v.kind == Value::Kind::Int) return v;
  if (v.kind == Value::Kind::Bool) return Value::integer(v.b);
  if (v.kind == Value::Kind::Float) return std::fabs(v.f) < 9.2e18 ? Value::integer(static_cast<int64_t>(v.f)) : Value::integer(dflt);
  if (v.is_string()) {
    const std::string t = py_strip(v.s, std::nullopt, true, true);
    try {
      size_t used = 0;
      const long long x = std::stoll(t, &used, 10);
      if (used == t.size()) return Value::integer(x);
      const double d = std::stod(t, &used);
      if (used == t.size() && std::fabs(d) < 9.2e18) return Value::integer(static_cast<int64_t>(d));
    } catch (const std::exception&) {
    }
  }
  return Value::integer(dflt);
}

Value f_float(const Value& v, CallArgs& a) {
  const Value* d = arg(a, 0, "default");
  if (v.is_number()) return Value::real(v.as_double());
  if (v.is_string()) {
    try {
      size_t used = 0;
      const std::string t = py_strip(v.s, std::nullopt, true, true);
      const double x = std::stod(t, &used);
      if (used == t.size()) return Value::real(x);
    } catch (const std::exception&) {
    }
  }
  return d ? *d : Value::real(0.0);
}

Value f_abs(const Value& v, CallArgs&) {
  if (v.kind == Value::Kind::Int) {
    if (v.i == INT64_MIN) fail("abs: integer overflow");
    return Value::integer(v.i < 0 ? -v.i : v.i);
  }
  if (v.kind == Value::Kind::Float) return Value::real(std::fabs(v.f));
  fail("abs: needs a number, got " + type_name(v));
}

Value f_round(const Value& v, CallArgs& a) {
  if (!v.is_number()) fail("round: needs a number, got " + type_name(v));
  const int64_t prec = int_arg(a, 0, "precision", "round", 0);
  const std::string method = str_arg(a, 1, "method", "round", "common");
  if (prec < -300 || prec > 300) fail("round: precision must be in [-300, 300]");
  const double m = std::pow(10.0, static_cast<double>(prec)), x = v.as_double() * m;
  double r;
  if (method == "common") r = std::nearbyint(x);  // Python's round(): halves to even
  else if (method == "floor") r = std::floor(x);
  else if (method == "ceil") r = std::ceil(x);
  else fail("round: method must be common, floor or ceil");
  return Value::real(r / m);
}

Value f_escape(const Value& v, CallArgs&) {
  std::string out;
  for (char c : str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(out);
}

Value f_safe(const Value& v, CallArgs&) { return v; }

Value f_indent(const Value& v, CallArgs& a) {
  const Value* w = arg(a, 0, "width");
  const int64_t width = w && w->is_string() ? 0 : int_arg(a, 0, "width", "indent", 4);
  if (width < 0 || width > 4096) fail("indent: width must be in [0, 4096]");
  const std::string pad = w && w->is_string() ? w->s : std::string(static_cast<size_t>(width), ' ');
  const bool first = bool_arg(a, 1, "first", false), blank = bool_arg(a, 2, "blank", false);
  std::string s = str(v), out;
  size_t p = 0;
  bool line0 = true;
  for (;;) {
    const size_t q = s.find('\n', p);
    const std::string line = s.substr(p, q == std::string::npos ? std::string::npos : q - p);
    if ((line0 ? first : (blank || !py_strip(line, std::nullopt, true, true).empty())) && !(line0 && line.empty() && false))
      out += pad;
    out += line;
    if (q == std::string::npos) break;
    out += '\n';
    p = q + 1;
    line0 = false;
  }
  return Value::string(out);
}

Value f_reverse(const Value& v, CallArgs&) {
  if (v.is_string()) {
    std::u32string u = to_u32(v.s);
    std::reverse(u.begin(), u.end());
    return Value::string(to_utf8(u));
  }
  List l = iterate(v, "reverse");
  std::reverse(l.begin(), l.end());
  return Value::list_of(std::move(l));
}

Value f_sort(const Value& v, CallArgs& a) {
  List l = iterate(v, "sort");
  const bool rev = bool_arg(a, 0, "reverse", false), cs = bool_arg(a, 1, "case_sensitive", false);
  const Value* attr = arg(a, 2, "attribute");
  auto key = [&](const Value& e) {
    Value k = attr ? attribute_of(e, str(*attr)) : e;
    if (!cs && k.is_string()) k = Value::string(lower(k.s));
    return k;
  };
  std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) { return rev ? less(key(y), key(x)) : less(key(x), key(y)); });
  return Value::list_of(std::move(l));
}

Value f_unique(const Value& v, CallArgs&) {
  List out;
  for (const Value& e : iterate(v, "unique")) {
    bool seen = false;
    for (const Value& o : out) seen = seen || (o.is_string() && e.is_string() ? lower(o.s) == lower(e.s) : equal(o, e));
    if (!seen) out.push_back(e);
  }
  return Value::list_of(std::move(out));
}

Value f_sum(const Value& v, CallArgs& a) {
  const Value* attr = arg(a, 0, "attribute");
  Value total = arg(a, 1, "start") ? *arg(a, 1, "start") : Value::integer(0);
  for (const Value& e : iterate(v, "sum")) {
    const Value x = attr ? attribute_of(e, str(*attr)) : e;
    if (!x.is_number() || !total.is_number()) fail("sum: needs numbers, got " + type_name(x));
    if (total.kind == Value::Kind::Float || x.kind == Value::Kind::Float) {
      total = Value::real(total.as_double() + x.as_double());
    } else {
      int64_t r = 0;
      if (__builtin_add_overflow(total.kind == Value::Kind::Int ? total.i : total.b, x.kind == Value::Kind::Int ? x.i : x.b, &r))
        fail("sum: integer overflow");
      total = Value::integer(r);
    }
  }
  return total;
}

// select / reject / selectattr / rejectattr: keep the items whose test (by name, with the
// remaining arguments; none: truthiness) is `want`.
Value select_items(const Value& v, CallArgs& a, bool by_attr, bool want, const char* fn) {
  size_t k = 0;
  std::string attr;
  if (by_attr) {
    if (a.pos.empty()) fail(std::string(fn) + ": needs an attribute name");
    attr = str(a.pos[k++]);
  }
  std::string test;
  if (k < a.pos.size()) test = str(a.pos[k++]);
  if (!test.empty() && !has_test(test)) fail(std::string(fn) + ": unknown test '" + test + "'");
  CallArgs rest;
  rest.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(k), a.pos.end());
  List out;
  for (const Value& e : iterate(v, fn)) {
    const Value x = by_attr ? attribute_of(e, attr) : e;
    const bool ok = test.empty() ? x.truthy() : apply_test(test, x, rest);
    if (ok == want) out.push_back(e);
  }
  return Value::list_of(std::move(out));
}
Value f_select(const Value& v, CallArgs& a) { return select_items(v, a, false, true, "select"); }
Value f_reject(const Value& v, CallArgs& a) { return select_items(v, a, false, false, "reject"); }
Value f_selectattr(const Value& v, CallArgs& a) { return select_items(v, a, true, true, "selectattr"); }
Value f_rejectattr(const Value& v, CallArgs& a) { return select_items(v, a, true, false, "rejectattr"); }

Value f_map(const Value& v, CallArgs& a) {
  List out;
  if (const Value* attr = a.keyword("attribute")) {
    const Value* dflt = a.keyword("default");
    for (const Value& e : iterate(v, "map")) {
      Value x = attribute_of(e, str(*attr));
      out.push_back(x.is_undefined() && dflt ? *dflt : x);
    }
    return Value::list_of(std::move(out));
  }
  if (a.pos.empty()) fail("map: needs a filter name or attribute=");
  const std::string name = str(a.pos[0]);
  if (!has_filter(name)) fail("map: unknown filter '" + name + "'");
  CallArgs rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (const Value& e : iterate(v, "map")) {
    CallArgs copy = rest;
    out.push_back(apply_filter(name, e, copy));
  }
  return Value::list_of(std::move(out));
}

const std::map<std::string, Filter>& filters() {
  static const std::map<std::string, Filter> f = {
      {"abs", f_abs}, {"capitalize", f_capitalize}, {"count", f_length}, {"d", f_default}, {"default", f_default},
      {"e", f_escape}, {"escape", f_escape}, {"first", f_first}, {"float", f_float}, {"indent", f_indent},
      {"int", f_int}, {"items", f_items}, {"join", f_join}, {"last", f_last}, {"length", f_length},
      {"list", f_list}, {"lower", f_lower}, {"map", f_map}, {"reject", f_reject}, {"rejectattr", f_rejectattr},
      {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round}, {"safe", f_safe}, {"select", f_select},
      {"selectattr", f_selectattr}, {"sort", f_sort}, {"string", f_string}, {"sum", f_sum}, {"title", f_title},
      {"tojson", f_tojson}, {"trim", f_trim}, {"unique", f_unique}, {"upper", f_upper}};
  return f;
}

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

std::string py_strip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string u = to_u32(s), set = chars ? to_u32(*chars) : U"";
  auto strip_me = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_me(u[b])) ++b;
  if (right)
    while (e > b && strip_me(u[e - 1])) --e;
  return to_utf8(u.substr(b, e - b));
}

bool has_filter(const std::string& name) { return filters().count(name) != 0; }
bool has_test(const std::string& name) { return tests().count(name) != 0; }

Value apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) fail("unknown filter '" + name + "'");
  return it->second(input, args);
}

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
      return Value::function([obj](CallArgs& a) { return f_items(obj, a); });
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
