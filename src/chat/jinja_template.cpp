#include "magellano/chat/jinja_template.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <unordered_map>

#include "magellano/chat/jinja_builtins.hpp"
#include "jinja_text.hpp"

namespace magellano::chat::jinja {

namespace {

constexpr int kMaxDepth = 200;          // nested macro calls
constexpr size_t kMaxOutput = 64 << 20;  // bytes of output

struct Scope {
  std::unordered_map<std::string, Value> vars;
  Scope* parent = nullptr;
  const Value* find(const std::string& n) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->vars.find(n);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

enum class Flow { Normal, Break, Continue };

class Renderer {
 public:
  Renderer(const Source& src, Scope& root) : src_(src), root_(root) {}

  Flow exec(const Body& body, Scope& scope, std::string& out) {
    for (const auto& s : body) {
      const Flow f = exec(*s, scope, out);
      if (f != Flow::Normal) return f;
      if (out.size() > kMaxOutput) fail("the output passed 64 MiB", s->pos);
    }
    return Flow::Normal;
  }

 private:
  const Source& src_;
  Scope& root_;
  int depth_ = 0;

  [[noreturn]] void fail(const std::string& what, size_t pos) const {
    throw TemplateError("chat template: " + what + " at " + src_.where(pos));
  }

  Flow exec(const Stmt& s, Scope& scope, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Text: out += s.text; return Flow::Normal;
      case Stmt::Kind::Output: out += str(eval(*s.expr, scope)); return Flow::Normal;
      case Stmt::Kind::If:
        for (size_t k = 0; k < s.conds.size(); ++k)
          if (eval(*s.conds[k], scope).truthy()) return exec(s.bodies[k], scope, out);
        if (s.bodies.size() > s.conds.size()) return exec(s.bodies.back(), scope, out);
        return Flow::Normal;
      case Stmt::Kind::For: run_for(s, scope, out); return Flow::Normal;
      case Stmt::Kind::Set: run_set(s, scope); return Flow::Normal;
      case Stmt::Kind::Macro: scope.vars[s.text] = macro(s); return Flow::Normal;
      case Stmt::Kind::CallBlock: {
        // The macro gets caller() (rendering the block here) as a hidden keyword argument.
        const Expr& call = *s.expr;
        Value f = eval(*call.kids[0], scope);
        if (f.kind != Value::Kind::Function) fail("{% call %} needs a macro, got " + type_name(f), call.pos);
        CallArgs a = args(call, scope);
        a.kw.emplace_back("caller", Value::function([this, &s, &scope](CallArgs&) {
          std::string text;
          Scope body_scope{{}, &scope};
          exec(s.bodies[0], body_scope, text);
          return Value::string(text);
        }));
        out += str(at(call.pos, [&] { return (*f.fn)(a); }));
        return Flow::Normal;
      }
      case Stmt::Kind::FilterBlock: {
        std::string text;
        Scope inner{{}, &scope};
        exec(s.bodies[0], inner, text);
        out += str(filter(*s.expr, Value::string(text), scope));
        return Flow::Normal;
      }
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
      case Stmt::Kind::Generation: return exec(s.bodies[0], scope, out);
    }
    return Flow::Normal;
  }

  void bind(const std::vector<std::string>& targets, const Value& v, Scope& scope, size_t pos) {
    if (targets.size() == 1) {
      scope.vars[targets[0]] = v;
      return;
    }
    if (!v.is_list() || v.list->size() != targets.size())
      fail("cannot unpack " + type_name(v) + " into " + std::to_string(targets.size()) + " names", pos);
    for (size_t k = 0; k < targets.size(); ++k) scope.vars[targets[k]] = (*v.list)[k];
  }

  List iterable(const Value& v, size_t pos) {
    std::optional<List> e = text::elements(v);
    if (!e) fail("'" + type_name(v) + "' object is not iterable", pos);
    return std::move(*e);
  }

  void run_for(const Stmt& s, Scope& scope, std::string& out) {
    List items = iterable(eval(*s.expr, scope), s.expr->pos);
    if (s.cond) {  // {% for x in xs if c %}: filtered before the loop (loop.length counts the kept)
      List kept;
      for (const Value& v : items) {
        Scope probe{{}, &scope};
        bind(s.targets, v, probe, s.pos);
        if (eval(*s.cond, probe).truthy()) kept.push_back(v);
      }
      items = std::move(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      Scope iter{{}, &scope};
      Dict loop;
      loop.set("index0", Value::integer(k));
      loop.set("index", Value::integer(k + 1));
      loop.set("revindex0", Value::integer(n - k - 1));
      loop.set("revindex", Value::integer(n - k));
      loop.set("first", Value::boolean(k == 0));
      loop.set("last", Value::boolean(k == n - 1));
      loop.set("length", Value::integer(n));
      loop.set("depth", Value::integer(1));
      loop.set("depth0", Value::integer(0));
      loop.set("previtem", k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("previtem"));
      loop.set("nextitem", k + 1 < n ? items[static_cast<size_t>(k + 1)] : Value::undefined("nextitem"));
      loop.set("cycle", Value::function([k](CallArgs& a) {
        if (a.pos.empty()) throw BuiltinError("loop.cycle() takes at least one value");
        return a.pos[static_cast<size_t>(k) % a.pos.size()];
      }));
      iter.vars["loop"] = Value::dict_of(std::move(loop));
      bind(s.targets, items[static_cast<size_t>(k)], iter, s.pos);
      if (exec(s.bodies[0], iter, out) == Flow::Break) break;
    }
    if (n == 0 && s.bodies.size() > 1) {
      Scope inner{{}, &scope};
      exec(s.bodies[1], inner, out);
    }
  }

  void run_set(const Stmt& s, Scope& scope) {
    Value v;
    if (!s.bodies.empty()) {
      std::string text;
      Scope inner{{}, &scope};
      exec(s.bodies[0], inner, text);
      v = Value::string(text);
    } else {
      v = eval(*s.expr, scope);
    }
    if (!s.text.empty()) {  // set ns.attr = v
      const Value* ns = scope.find(s.targets[0]);
      if (!ns || !ns->is_dict() || !ns->is_namespace)
        fail("cannot assign the attribute '" + s.text + "' of '" + s.targets[0] + "': only a namespace() takes attributes", s.pos);
      ns->dict->set(s.text, v);
      return;
    }
    bind(s.targets, v, scope, s.pos);
  }

  Value macro(const Stmt& s) {
    return Value::function([this, &s](CallArgs& a) {
      if (a.pos.size() > s.targets.size())
        throw BuiltinError("macro '" + s.text + "' takes " + std::to_string(s.targets.size()) + " arguments, got " +
                           std::to_string(a.pos.size()));
      if (++depth_ > kMaxDepth) {
        depth_ = 0;
        throw BuiltinError("macro calls nested deeper than " + std::to_string(kMaxDepth));
      }
      Scope inner{{}, &root_};
      for (size_t k = 0; k < s.targets.size(); ++k) {
        const Value* kw = a.keyword(s.targets[k]);
        if (k < a.pos.size()) inner.vars[s.targets[k]] = a.pos[k];
        else if (kw) inner.vars[s.targets[k]] = *kw;
        else if (s.defaults[k]) inner.vars[s.targets[k]] = eval(*s.defaults[k], inner);
        else inner.vars[s.targets[k]] = Value::undefined(s.targets[k]);
      }
      for (const auto& [k, v] : a.kw)
        if (k != "caller" && std::find(s.targets.begin(), s.targets.end(), k) == s.targets.end())
          throw BuiltinError("macro '" + s.text + "' has no parameter '" + k + "'");
      if (const Value* c = a.keyword("caller")) inner.vars["caller"] = *c;
      std::string text;
      exec(s.bodies[0], inner, text);
      --depth_;
      return Value::string(text);
    });
  }

  // --- expressions ---
  CallArgs args(const Expr& e, Scope& scope) {
    CallArgs a;
    for (size_t k = 0; k < e.npos; ++k) a.pos.push_back(eval(*e.kids[1 + k], scope));
    for (size_t k = 0; k < e.kw_names.size(); ++k) a.kw.emplace_back(e.kw_names[k], eval(*e.kids[1 + e.npos + k], scope));
    return a;
  }

  // Runs a builtin, adding the template position to its errors.
  template <class F>
  auto at(size_t pos, F f) -> decltype(f()) {
    try {
      return f();
    } catch (const RaisedError&) {
      throw;
    } catch (const BuiltinError& e) {
      fail(e.what(), pos);
    } catch (const TemplateError& e) {
      const std::string m = e.what();
      if (m.rfind("chat template:", 0) == 0) throw;
      fail(m, pos);
    }
  }

  Value filter(const Expr& e, const Value& input, Scope& scope) {
    if (!has_filter(e.name)) fail("unknown filter '" + e.name + "'", e.pos);
    CallArgs a = args(e, scope);
    return at(e.pos, [&] { return apply_filter(e.name, input, a); });
  }

  [[noreturn]] void undefined_error(const Value& v, const std::string& what, size_t pos) {
    fail("'" + (v.s.empty() ? std::string("value") : v.s) + "' is undefined (reading " + what + ")", pos);
  }

  Value attr(const Value& obj, const std::string& name, size_t pos) {
    if (obj.is_undefined()) undefined_error(obj, "." + name, pos);
    if (auto m = method(obj, name)) return *m;
    if (obj.is_dict()) {
      const Value* v = obj.dict->find(name);
      return v ? *v : Value::undefined(name);
    }
    return Value::undefined(name);
  }

  Value item(const Value& obj, const Value& key, size_t pos) {
    if (obj.is_undefined()) undefined_error(obj, "[" + repr(key) + "]", pos);
    if (obj.is_dict()) {
      if (key.is_string()) {
        if (const Value* v = obj.dict->find(key.s)) return *v;
        if (auto m = method(obj, key.s)) return *m;
      }
      return Value::undefined(key.is_string() ? key.s : repr(key));
    }
    if ((obj.is_list() || obj.is_string()) && (key.kind == Value::Kind::Int || key.kind == Value::Kind::Bool)) {
      const int64_t i = key.kind == Value::Kind::Int ? key.i : key.b;
      if (obj.is_list()) {
        const int64_t n = static_cast<int64_t>(obj.list->size());
        const int64_t k = i < 0 ? i + n : i;
        return k >= 0 && k < n ? (*obj.list)[static_cast<size_t>(k)] : Value::undefined("[" + std::to_string(i) + "]");
      }
      const std::u32string u = to_u32(obj.s);
      const int64_t n = static_cast<int64_t>(u.size());
      const int64_t k = i < 0 ? i + n : i;
      return k >= 0 && k < n ? Value::string(to_utf8(u.substr(static_cast<size_t>(k), 1)))
                             : Value::undefined("[" + std::to_string(i) + "]");
    }
    if (key.is_string()) return attr(obj, key.s, pos);
    return Value::undefined(repr(key));
  }

  Value slice(const Value& obj, const Expr& e, Scope& scope) {
    auto bound = [&](const ExprPtr& p) -> std::optional<int64_t> {
      if (!p) return std::nullopt;
      Value v = eval(*p, scope);
      if (v.is_none()) return std::nullopt;
      if (v.kind != Value::Kind::Int) fail("slice indices must be integers, got " + type_name(v), p->pos);
      return v.i;
    };
    const auto start = bound(e.kids[1]), stop = bound(e.kids[2]), step_o = bound(e.kids[3]);
    const int64_t step = step_o.value_or(1);
    if (step == 0) fail("slice step cannot be zero", e.pos);
    if (obj.is_undefined()) undefined_error(obj, "a slice", e.pos);
    std::u32string u;
    int64_t n;
    if (obj.is_string()) {
      u = to_u32(obj.s);
      n = static_cast<int64_t>(u.size());
    } else if (obj.is_list()) {
      n = static_cast<int64_t>(obj.list->size());
    } else {
      fail("'" + type_name(obj) + "' object cannot be sliced", e.pos);
    }
    // Python's slice.indices
    auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
      if (!v) return dflt;
      int64_t x = *v < 0 ? *v + n : *v;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t b = clamp(start, step > 0 ? 0 : n - 1), en = clamp(stop, step > 0 ? n : -1);
    std::vector<size_t> idx;
    for (int64_t k = b; step > 0 ? k < en : k > en; k += step) idx.push_back(static_cast<size_t>(k));
    if (obj.is_string()) {
      std::u32string r;
      for (size_t k : idx) r += u[k];
      return Value::string(to_utf8(r));
    }
    List r;
    for (size_t k : idx) r.push_back((*obj.list)[k]);
    return Value::list_of(std::move(r), obj.tuple);
  }

  Value arith(const std::string& op, const Value& a, const Value& b, size_t pos) {
    auto unsupported = [&]() -> Value {
      fail("unsupported operand types for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'", pos);
    };
    if (a.is_undefined() || b.is_undefined()) {
      const Value& u = a.is_undefined() ? a : b;
      undefined_error(u, "an operand of " + op, pos);
    }
    const bool ints = (a.kind == Value::Kind::Int || a.kind == Value::Kind::Bool) &&
                      (b.kind == Value::Kind::Int || b.kind == Value::Kind::Bool);
    const int64_t ai = a.kind == Value::Kind::Int ? a.i : a.b, bi = b.kind == Value::Kind::Int ? b.i : b.b;
    int64_t out = 0;
    auto checked = [&](bool overflow) {
      if (overflow) fail("integer overflow in " + op + " (Python's integers are unbounded; ours are 64-bit)", pos);
      return Value::integer(out);
    };
    if (op == "+") {
      if (ints) return checked(__builtin_add_overflow(ai, bi, &out));
      if (a.is_number() && b.is_number()) return Value::real(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
      if (a.is_list() && b.is_list()) {
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return Value::list_of(std::move(l), a.tuple);
      }
      return unsupported();
    }
    if (op == "*") {
      if (ints) return checked(__builtin_mul_overflow(ai, bi, &out));
      if (a.is_number() && b.is_number()) return Value::real(a.as_double() * b.as_double());
      const Value& seq = a.is_number() ? b : a;
      const Value& cnt = a.is_number() ? a : b;
      if ((seq.is_string() || seq.is_list()) && (cnt.kind == Value::Kind::Int || cnt.kind == Value::Kind::Bool)) {
        const int64_t times = cnt.kind == Value::Kind::Int ? cnt.i : cnt.b;
        const size_t unit = seq.is_string() ? seq.s.size() : seq.list->size() * 16;
        if (times > 0 && unit > 0 && static_cast<uint64_t>(times) > kMaxOutput / unit)
          fail("a repetition (*) larger than 64 MiB", pos);
        if (seq.is_string()) {
          std::string r;
          for (int64_t k = 0; k < times; ++k) r += seq.s;
          return Value::string(r);
        }
        List l;
        for (int64_t k = 0; k < times; ++k) l.insert(l.end(), seq.list->begin(), seq.list->end());
        return Value::list_of(std::move(l));
      }
      return unsupported();
    }
    if (!a.is_number() || !b.is_number()) {
      if (op == "%" && a.is_string()) fail("'%' string formatting is not supported; use ~ or + to join text", pos);
      return unsupported();
    }
    if (op == "-") return ints ? checked(__builtin_sub_overflow(ai, bi, &out)) : Value::real(a.as_double() - b.as_double());
    if (op == "/") {
      if (b.as_double() == 0) fail("division by zero", pos);
      return Value::real(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (b.as_double() == 0) fail(op == "%" ? "modulo by zero" : "integer division by zero", pos);
      if (ints) {
        if (ai == INT64_MIN && bi == -1) return checked(true);
        int64_t q = ai / bi, r = ai % bi;
        if (r != 0 && ((r < 0) != (bi < 0))) --q, r += bi;
        return Value::integer(op == "//" ? q : r);
      }
      const double x = a.as_double(), y = b.as_double(), q = std::floor(x / y);
      return Value::real(op == "//" ? q : x - q * y);
    }
    if (op == "**") {
      if (ints && bi >= 0) {
        int64_t r = 1;
        for (int64_t k = 0; k < bi && r != 0 && !(r == 1 && (ai == 1 || ai == 0)); ++k)
          if (__builtin_mul_overflow(r, ai, &r)) return checked(true);
        if (ai == 0 && bi > 0) r = 0;
        return Value::integer(r);
      }
      return Value::real(std::pow(a.as_double(), b.as_double()));
    }
    return unsupported();
  }

  bool contains(const Value& container, const Value& item, size_t pos) {
    if (container.is_string()) {
      if (!item.is_string()) fail("'in <string>' requires a string on the left, got " + type_name(item), pos);
      return container.s.find(item.s) != std::string::npos;
    }
    if (container.is_dict()) return item.is_string() && container.dict->find(item.s);
    if (container.is_list()) {
      for (const Value& e : *container.list)
        if (equal(e, item)) return true;
      return false;
    }
    if (container.is_undefined()) return false;
    fail("argument of type '" + type_name(container) + "' is not iterable", pos);
  }

  bool compare(const std::string& op, const Value& a, const Value& b, size_t pos) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(b, a, pos);
    if (op == "not in") return !contains(b, a, pos);
    return at(pos, [&] {
      if (op == "<") return less(a, b);
      if (op == ">") return less(b, a);
      if (op == "<=") return !less(b, a);
      return !less(a, b);  // >=
    });
  }

  Value eval(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: {
        const Value* v = scope.find(e.name);
        return v ? *v : Value::undefined(e.name);
      }
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        List l;
        for (const auto& k : e.kids) l.push_back(eval(*k, scope));
        return Value::list_of(std::move(l), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::DictLit: {
        Dict d;
        for (size_t k = 0; k < e.kids.size(); k += 2) {
          Value key = eval(*e.kids[k], scope);
          if (!key.is_string()) fail("dict keys must be strings here, got " + type_name(key), e.kids[k]->pos);
          d.set(key.s, eval(*e.kids[k + 1], scope));
        }
        return Value::dict_of(std::move(d));
      }
      case Expr::Kind::Attr: return attr(eval(*e.kids[0], scope), e.name, e.pos);
      case Expr::Kind::Item: return item(eval(*e.kids[0], scope), eval(*e.kids[1], scope), e.pos);
      case Expr::Kind::Slice: return slice(eval(*e.kids[0], scope), e, scope);
      case Expr::Kind::Call: {
        Value f = eval(*e.kids[0], scope);
        if (f.is_undefined()) undefined_error(f, "a call", e.pos);
        if (f.kind != Value::Kind::Function) fail("'" + type_name(f) + "' object is not callable", e.pos);
        CallArgs a = args(e, scope);
        return at(e.pos, [&] { return (*f.fn)(a); });
      }
      case Expr::Kind::Filter: return filter(e, eval(*e.kids[0], scope), scope);
      case Expr::Kind::Test: {
        if (!has_test(e.name)) fail("unknown test '" + e.name + "'", e.pos);
        const Value v = eval(*e.kids[0], scope);
        CallArgs a = args(e, scope);
        const bool r = at(e.pos, [&] { return apply_test(e.name, v, a); });
        return Value::boolean(r != e.negate);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.kids[0], scope);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool) {
          const int64_t i = v.kind == Value::Kind::Int ? v.i : v.b;
          if (e.name == "-" && i == INT64_MIN) fail("integer overflow in unary -", e.pos);
          return Value::integer(e.name == "-" ? -i : i);
        }
        if (v.kind == Value::Kind::Float) return Value::real(e.name == "-" ? -v.f : v.f);
        fail("bad operand type for unary " + e.name + ": '" + type_name(v) + "'", e.pos);
      }
      case Expr::Kind::Binary: {
        if (e.name == "and") {
          Value l = eval(*e.kids[0], scope);
          return l.truthy() ? eval(*e.kids[1], scope) : l;
        }
        if (e.name == "or") {
          Value l = eval(*e.kids[0], scope);
          return l.truthy() ? l : eval(*e.kids[1], scope);
        }
        const Value l = eval(*e.kids[0], scope), r = eval(*e.kids[1], scope);
        if (e.name == "~") return Value::string(str(l) + str(r));
        return arith(e.name, l, r, e.pos);
      }
      case Expr::Kind::Compare: {
        Value l = eval(*e.kids[0], scope);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value r = eval(*e.kids[k + 1], scope);
          if (!compare(e.ops[k], l, r, e.pos)) return Value::boolean(false);
          l = std::move(r);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::Cond:
        if (eval(*e.kids[0], scope).truthy()) return eval(*e.kids[1], scope);
        return e.kids[2] ? eval(*e.kids[2], scope) : Value::undefined();
    }
    return Value::undefined();
  }
};

}  // namespace

Template::Template(const std::string& source, const LexOptions& options) {
  const auto tokens = tokenize(src_, source, options);
  body_ = parse(tokens, src_);
}

std::string Template::render(const Dict& vars) const {
  Scope globals;
  for (auto& [k, v] : default_globals().items) globals.vars[k] = v;
  Scope root{{}, &globals};
  for (const auto& [k, v] : vars.items) root.vars[k] = v;
  std::string out;
  Renderer(src_, root).exec(body_, root, out);
  return out;
}

}  // namespace magellano::chat::jinja
