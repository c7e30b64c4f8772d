#include "jinja_text.hpp"

#include <algorithm>

#include "magellano/chat/jinja_builtins.hpp"

namespace magellano::chat::jinja::text {

[[noreturn]] void fail(const std::string& m) { throw BuiltinError(m); }

// Argument k by position or by name; nullptr when neither was given.
const Value* arg(const CallArgs& a, size_t k, const char* name) {
  if (k < a.pos.size()) return &a.pos[k];
  return a.keyword(name);
}

std::string str_arg(const CallArgs& a, size_t k, const char* name, const char* fn, const std::string& dflt) {
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

std::optional<List> elements(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined: return List{};
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
    default: return std::nullopt;
  }
}

List iterate(const Value& v, const char* fn) {
  std::optional<List> e = elements(v);
  if (!e) fail(std::string(fn) + ": '" + type_name(v) + "' object is not iterable");
  return std::move(*e);
}

bool is_space(char32_t c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x1f || c == 0x85 ||
         c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

static std::string ascii_map(std::string s, int (*f)(int)) {
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

}  // namespace magellano::chat::jinja::text
