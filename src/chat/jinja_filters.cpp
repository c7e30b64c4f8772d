// The filters of jinja_builtins.hpp.
#include <algorithm>
#include <climits>
#include <cmath>
#include <map>

#include "jinja_text.hpp"
#include "magellano/chat/jinja_builtins.hpp"

namespace magellano::chat::jinja {

using namespace text;

namespace {

using Filter = Value (*)(const Value&, CallArgs&);

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

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) != 0; }

Value apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) fail("unknown filter '" + name + "'");
  return it->second(input, args);
}

}  // namespace magellano::chat::jinja
