#include <cstdlib>
#include <set>

#include "magellano/chat/jinja_ast.hpp"

namespace magellano::chat::jinja {

namespace {

using K = Token::Kind;

class Parser {
 public:
  Parser(const std::vector<Token>& t, const Source& s) : toks_(t), src_(s) {}

  Body parse_all() {
    std::string end;
    Body b = body({}, end);
    return b;
  }

 private:
  const std::vector<Token>& toks_;
  const Source& src_;
  size_t i_ = 0;
  int depth_ = 0;  // nesting of expressions and statements being parsed

  static constexpr int kMaxDepth = 200;
  // One level deeper for its lifetime; past kMaxDepth an error (instead of exhausting the stack).
  struct Deeper {
    Parser& p;
    Deeper(Parser& parser, size_t pos) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels", pos);
    }
    ~Deeper() { --p.depth_; }
  };

  const Token& cur() const { return toks_[i_]; }
  const Token& next() { return toks_[i_++]; }
  [[noreturn]] void fail(const std::string& what, size_t pos) const {
    throw TemplateError("chat template: " + what + " at " + src_.where(pos));
  }
  bool is_op(const char* op) const { return cur().kind == K::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == K::Name && cur().text == n; }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case K::End: return "the end of the template";
      case K::BlockEnd: return "'%}'";
      case K::VarEnd: return "'}}'";
      case K::Text: return "text";
      case K::String: return "a string";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', found " + describe(cur()), cur().pos);
    ++i_;
  }
  std::string expect_name(const char* what) {
    if (cur().kind != K::Name) fail(std::string("expected ") + what + ", found " + describe(cur()), cur().pos);
    return next().text;
  }
  void expect_block_end() {
    if (cur().kind != K::BlockEnd) fail("expected '%}', found " + describe(cur()), cur().pos);
    ++i_;
  }

  // Statements until one of `ends` (a block keyword) is found; its name goes to `found` and the
  // parser stands after the keyword. At top level (no ends), until the end of input.
  Body body(const std::set<std::string>& ends, std::string& found) {
    Body out;
    for (;;) {
      const Token& t = cur();
      if (t.kind == K::End) {
        if (!ends.empty()) {
          std::string want;
          for (const auto& e : ends) want += (want.empty() ? "" : " or ") + std::string("{% ") + e + " %}";
          fail("missing " + want + " before the end of the template", t.pos);
        }
        return out;
      }
      if (t.kind == K::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->text = t.text;
        s->pos = t.pos;
        out.push_back(std::move(s));
        ++i_;
      } else if (t.kind == K::VarBegin) {
        ++i_;
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->pos = t.pos;
        s->expr = expression();
        if (cur().kind != K::VarEnd) fail("expected '}}', found " + describe(cur()), cur().pos);
        ++i_;
        out.push_back(std::move(s));
      } else if (t.kind == K::BlockBegin) {
        ++i_;
        const Token& kw = cur();
        if (kw.kind != K::Name) fail("expected a statement name after '{%', found " + describe(kw), kw.pos);
        if (ends.count(kw.text)) {
          found = kw.text;
          ++i_;
          return out;
        }
        out.push_back(statement());
      } else {
        fail("unexpected " + describe(t), t.pos);
      }
    }
  }

  std::unique_ptr<Stmt> statement() {
    const Deeper guard(*this, cur().pos);
    const Token kw = next();
    auto s = std::make_unique<Stmt>();
    s->pos = kw.pos;
    const std::string& k = kw.text;
    std::string found;
    if (k == "if") {
      s->kind = Stmt::Kind::If;
      s->conds.push_back(expression());
      expect_block_end();
      for (;;) {
        s->bodies.push_back(body({"elif", "else", "endif"}, found));
        if (found == "elif") {
          s->conds.push_back(expression());
          expect_block_end();
        } else if (found == "else") {
          expect_block_end();
          s->bodies.push_back(body({"endif"}, found));
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (k == "for") {
      s->kind = Stmt::Kind::For;
      s->targets.push_back(expect_name("a loop variable"));
      while (is_op(",")) {
        ++i_;
        s->targets.push_back(expect_name("a loop variable"));
      }
      if (!is_name("in")) fail("expected 'in' in the for loop, found " + describe(cur()), cur().pos);
      ++i_;
      s->expr = or_expr(false);  // no bare `x if c else y` here: "if" starts the loop's filter
      if (is_name("if")) {
        ++i_;
        s->cond = or_expr(true);
      }
      if (is_name("recursive")) fail("recursive for loops are not supported", cur().pos);
      expect_block_end();
      s->bodies.push_back(body({"else", "endfor"}, found));
      expect_block_end();
      if (found == "else") {
        s->bodies.push_back(body({"endfor"}, found));
        expect_block_end();
      }
    } else if (k == "set") {
      s->kind = Stmt::Kind::Set;
      s->targets.push_back(expect_name("a variable name"));
      if (is_op(".")) {
        ++i_;
        s->text = expect_name("an attribute name");
      } else {
        while (is_op(",")) {
          ++i_;
          s->targets.push_back(expect_name("a variable name"));
        }
      }
      if (cur().kind == K::BlockEnd) {  // {% set x %}...{% endset %}
        if (s->targets.size() != 1 || !s->text.empty()) fail("a block set takes one plain name", s->pos);
        ++i_;
        s->bodies.push_back(body({"endset"}, found));
        expect_block_end();
      } else {
        expect_op("=");
        s->expr = tuple_or_expression();
        expect_block_end();
      }
    } else if (k == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->text = expect_name("a macro name");
      expect_op("(");
      while (!is_op(")")) {
        s->targets.push_back(expect_name("a parameter name"));
        if (is_op("=")) {
          ++i_;
          s->defaults.push_back(expression());
        } else {
          s->defaults.push_back(nullptr);
        }
        if (!is_op(")")) expect_op(",");
      }
      ++i_;
      expect_block_end();
      s->bodies.push_back(body({"endmacro"}, found));
      expect_block_end();
    } else if (k == "call") {
      s->kind = Stmt::Kind::CallBlock;
      if (is_op("(")) fail("{% call(args) %} (a caller with parameters) is not supported", cur().pos);
      s->expr = expression();
      if (s->expr->kind != Expr::Kind::Call) fail("{% call %} needs a macro call", s->pos);
      expect_block_end();
      s->bodies.push_back(body({"endcall"}, found));
      expect_block_end();
    } else if (k == "filter") {
      s->kind = Stmt::Kind::FilterBlock;
      auto f = std::make_unique<Expr>();
      f->kind = Expr::Kind::Filter;
      f->pos = cur().pos;
      f->name = expect_name("a filter name");
      f->kids.push_back(nullptr);  // the block's text
      if (is_op("(")) call_args(*f);
      s->expr = std::move(f);
      expect_block_end();
      s->bodies.push_back(body({"endfilter"}, found));
      expect_block_end();
    } else if (k == "break" || k == "continue") {
      s->kind = k == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_block_end();
    } else if (k == "generation") {
      s->kind = Stmt::Kind::Generation;
      expect_block_end();
      s->bodies.push_back(body({"endgeneration"}, found));
      expect_block_end();
    } else if (k == "include" || k == "import" || k == "from" || k == "extends" || k == "block" || k == "with" ||
               k == "autoescape" || k == "do" || k == "trans") {
      fail("the statement {% " + k + " %} is not supported by magellano's chat template renderer", kw.pos);
    } else {
      fail("unknown statement {% " + k + " %}", kw.pos);
    }
    return s;
  }

  // --- expressions ---------------------------------------------------------------------------
  ExprPtr make(Expr::Kind kind, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // `a, b` without brackets (set's right-hand side) is a tuple.
  ExprPtr tuple_or_expression() {
    const size_t pos = cur().pos;
    ExprPtr first = expression();
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::Tuple, pos);
    t->kids.push_back(std::move(first));
    while (is_op(",")) {
      ++i_;
      if (cur().kind == K::BlockEnd) break;
      t->kids.push_back(expression());
    }
    return t;
  }

  ExprPtr expression() { return or_expr(true); }

  // with_cond: also `x if c else y` (jinja2's parse_condexpr around parse_or).
  ExprPtr or_expr(bool with_cond) {
    const Deeper guard(*this, cur().pos);
    ExprPtr e = binary_chain();
    while (with_cond && is_name("if")) {
      auto c = make(Expr::Kind::Cond, cur().pos);
      ++i_;
      c->kids.push_back(binary_chain());  // the condition
      c->kids.insert(c->kids.begin() + 1, std::move(e));
      if (is_name("else")) {
        ++i_;
        c->kids.push_back(or_expr(true));
      } else {
        c->kids.push_back(nullptr);
      }
      e = std::move(c);  // kids: [cond, then, else]
    }
    return e;
  }

  ExprPtr binary_chain() { return parse_or(); }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      auto b = make(Expr::Kind::Binary, cur().pos);
      ++i_;
      b->name = "or";
      b->kids.push_back(std::move(l));
      b->kids.push_back(parse_and());
      l = std::move(b);
    }
    return l;
  }

  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      auto b = make(Expr::Kind::Binary, cur().pos);
      ++i_;
      b->name = "and";
      b->kids.push_back(std::move(l));
      b->kids.push_back(parse_not());
      l = std::move(b);
    }
    return l;
  }

  ExprPtr parse_not() {
    const Deeper guard(*this, cur().pos);
    if (is_name("not")) {
      auto u = make(Expr::Kind::Unary, cur().pos);
      ++i_;
      u->name = "not";
      u->kids.push_back(parse_not());
      return u;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const size_t pos = cur().pos;
    ExprPtr first = parse_math1();
    std::unique_ptr<Expr> c;
    for (;;) {
      std::string op;
      if (cur().kind == K::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                                  cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        ++i_;
        op = "in";
      } else if (is_name("not") && toks_[i_ + 1].kind == K::Name && toks_[i_ + 1].text == "in") {
        i_ += 2;
        op = "not in";
      } else {
        break;
      }
      if (!c) {
        c = make(Expr::Kind::Compare, pos);
        c->kids.push_back(std::move(first));
      }
      c->ops.push_back(op);
      c->kids.push_back(parse_math1());
    }
    return c ? std::move(c) : std::move(first);
  }

  ExprPtr binary(ExprPtr l, const std::string& op, ExprPtr r, size_t pos) {
    auto b = make(Expr::Kind::Binary, pos);
    b->name = op;
    b->kids.push_back(std::move(l));
    b->kids.push_back(std::move(r));
    return b;
  }

  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      l = binary(std::move(l), t.text, parse_concat(), t.pos);
    }
    return l;
  }

  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      const Token& t = next();
      l = binary(std::move(l), "~", parse_math2(), t.pos);
    }
    return l;
  }

  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      l = binary(std::move(l), t.text, parse_pow(), t.pos);
    }
    return l;
  }

  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      l = binary(std::move(l), "**", parse_unary(true), t.pos);
    }
    return l;
  }

  ExprPtr parse_unary(bool with_filter) {
    const Deeper guard(*this, cur().pos);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto u = make(Expr::Kind::Unary, cur().pos);
      u->name = next().text;
      u->kids.push_back(parse_unary(false));
      node = std::move(u);
    } else {
      node = postfix(primary());
    }
    return with_filter ? filters(std::move(node)) : std::move(node);
  }

  ExprPtr primary() {
    const Token& t = cur();
    if (t.kind == K::Name) {
      ++i_;
      if (t.text == "true" || t.text == "True") return literal(Value::boolean(true), t.pos);
      if (t.text == "false" || t.text == "False") return literal(Value::boolean(false), t.pos);
      if (t.text == "none" || t.text == "None") return literal(Value::none(), t.pos);
      auto n = make(Expr::Kind::Name, t.pos);
      n->name = t.text;
      return n;
    }
    if (t.kind == K::String) {
      std::string s = next().text;
      while (cur().kind == K::String) s += next().text;  // adjacent literals concatenate
      return literal(Value::string(s), t.pos);
    }
    if (t.kind == K::Integer) {
      ++i_;
      return literal(Value::integer(integer_of(t)), t.pos);
    }
    if (t.kind == K::Float) {
      ++i_;
      return literal(Value::real(std::strtod(t.text.c_str(), nullptr)), t.pos);  // 1e999: inf, as Python
    }
    if (is_op("(")) {
      ++i_;
      if (is_op(")")) {
        ++i_;
        return make(Expr::Kind::Tuple, t.pos);
      }
      ExprPtr e = expression();
      if (is_op(",")) {
        auto tu = make(Expr::Kind::Tuple, t.pos);
        tu->kids.push_back(std::move(e));
        while (is_op(",")) {
          ++i_;
          if (is_op(")")) break;
          tu->kids.push_back(expression());
        }
        e = std::move(tu);
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ++i_;
      auto l = make(Expr::Kind::List, t.pos);
      while (!is_op("]")) {
        l->kids.push_back(expression());
        if (!is_op("]")) expect_op(",");
      }
      ++i_;
      return l;
    }
    if (is_op("{")) {
      ++i_;
      auto d = make(Expr::Kind::DictLit, t.pos);
      while (!is_op("}")) {
        d->kids.push_back(expression());
        expect_op(":");
        d->kids.push_back(expression());
        if (!is_op("}")) expect_op(",");
      }
      ++i_;
      return d;
    }
    fail("expected a value, found " + describe(t), t.pos);
  }

  int64_t integer_of(const Token& t) const {
    try {
      return std::stoll(t.text);
    } catch (const std::out_of_range&) {
      fail("the integer " + t.text + " is larger than 64 bits", t.pos);
    }
  }

  ExprPtr literal(Value v, size_t pos) {
    auto e = make(Expr::Kind::Literal, pos);
    e->value = std::move(v);
    return e;
  }

  // ( args ) after a callee / filter / test already in e.kids[0..]: appends positional then keyword.
  void call_args(Expr& e) {
    expect_op("(");
    std::vector<ExprPtr> pos_args, kw_args;
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail("*args / **kwargs in calls are not supported", cur().pos);
      if (cur().kind == K::Name && toks_[i_ + 1].kind == K::Op && toks_[i_ + 1].text == "=") {
        e.kw_names.push_back(next().text);
        ++i_;
        kw_args.push_back(expression());
      } else {
        if (!kw_args.empty()) fail("a positional argument after a keyword argument", cur().pos);
        pos_args.push_back(expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    ++i_;
    e.npos = pos_args.size();
    for (auto& a : pos_args) e.kids.push_back(std::move(a));
    for (auto& a : kw_args) e.kids.push_back(std::move(a));
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        const size_t pos = next().pos;
        if (cur().kind == K::Integer) {  // x.0 is x[0]
          auto it = make(Expr::Kind::Item, pos);
          it->kids.push_back(std::move(e));
          it->kids.push_back(literal(Value::integer(integer_of(next())), pos));
          e = std::move(it);
          continue;
        }
        auto a = make(Expr::Kind::Attr, pos);
        a->name = expect_name("an attribute name after '.'");
        a->kids.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        const size_t pos = next().pos;
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = expression();
          if (k < 2 && is_op(":")) {
            ++i_;
            slice = true;
          } else {
            break;
          }
        }
        expect_op("]");
        if (slice) {
          auto s = make(Expr::Kind::Slice, pos);
          s->kids.push_back(std::move(e));
          for (auto& p : parts) s->kids.push_back(std::move(p));
          e = std::move(s);
        } else {
          if (!parts[0]) fail("an empty subscript []", pos);
          auto it = make(Expr::Kind::Item, pos);
          it->kids.push_back(std::move(e));
          it->kids.push_back(std::move(parts[0]));
          e = std::move(it);
        }
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::Call, cur().pos);
        c->kids.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (is_op("|")) {
        ++i_;
        auto f = make(Expr::Kind::Filter, cur().pos);
        f->name = expect_name("a filter name after '|'");
        while (is_op(".")) {  // dotted filter names do not exist in chat templates, but say so clearly
          ++i_;
          f->name += "." + expect_name("a filter name");
        }
        f->kids.push_back(std::move(e));
        if (is_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        ++i_;
        auto t = make(Expr::Kind::Test, cur().pos);
        if (is_name("not")) {
          ++i_;
          t->negate = true;
        }
        t->name = expect_name("a test name after 'is'");
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          call_args(*t);
        } else if (cur().kind == K::String || cur().kind == K::Integer || cur().kind == K::Float ||
                   (cur().kind == K::Name && !is_name("and") && !is_name("or") && !is_name("else") && !is_name("if") &&
                    !is_name("is") && !is_name("in") && !is_name("not"))) {
          t->kids.push_back(postfix(primary()));  // `x is divisibleby 3`, `x is sameas none`
          t->npos = 1;
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const Source& src) { return Parser(tokens, src).parse_all(); }

}  // namespace magellano::chat::jinja
