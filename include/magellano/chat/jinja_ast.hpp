// The parsed form of a Jinja template: expressions and statements (jinja2's grammar, the part
// chat templates use). Precedence, loosest first: `x if c else y`, or, and, not, comparisons
// (== != < <= > >= in, not in; chained), + -, ~, * / // %, **, unary - +, then filters `|f(..)`,
// tests `is [not] t(..)`, and postfix `.attr`, `[i]`, `[a:b:c]`, `(..)` on a primary.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "magellano/chat/jinja_lexer.hpp"
#include "magellano/chat/jinja_value.hpp"

namespace magellano::chat::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // kids
    Tuple,     // kids
    DictLit,   // kids: key, value, key, value, ...
    Attr,      // kids[0] . name
    Item,      // kids[0] [ kids[1] ]
    Slice,     // kids[0] [ kids[1] : kids[2] : kids[3] ] (null kid: omitted)
    Call,      // kids[0] ( kids[1..npos] , kw_names[k] = kids[1+npos+k] )
    Filter,    // kids[0] | name ( args as Call: kids[1..] )
    Test,      // kids[0] is [not: negate] name ( args )
    Unary,     // op kids[0]: "-", "+", "not"
    Binary,    // kids[0] op kids[1]: + - * / // % ** ~ and or
    Compare,   // kids[0] ops[0] kids[1] ops[1] kids[2] ...
    Cond,      // kids[1] if kids[0] else kids[2] (kids[2] null: undefined)
  };
  Kind kind;
  size_t pos = 0;
  std::string name;  // Name, Attr, Filter, Test; Unary / Binary: the operator
  Value value;       // Literal
  std::vector<ExprPtr> kids;
  std::vector<std::string> kw_names;  // Call / Filter / Test keyword arguments
  size_t npos = 0;                    // Call / Filter / Test: positional arguments among kids[1..]
  std::vector<std::string> ops;       // Compare
  bool negate = false;                // Test
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }}
    If,        // conds[k] → bodies[k]; bodies.size() == conds.size() + 1 with an else
    For,       // for targets in expr [if cond]: bodies[0], else bodies[1] (may be empty)
    Set,       // set targets = expr; with attr: set targets[0].attr = expr; block set: bodies[0]
    Macro,     // macro name(params = defaults): bodies[0]
    CallBlock, // call macro(args) with caller() rendering bodies[0]
    FilterBlock,  // filter name(args): bodies[0]
    Break,
    Continue,
    Generation,  // {% generation %} (transformers' assistant mask marker): bodies[0] as is
  };
  Kind kind;
  size_t pos = 0;
  std::string text;      // Text; Macro: name; Set: attribute name (or "")
  ExprPtr expr;          // Output, For (iterable), Set (value), CallBlock / FilterBlock (the call / filter)
  ExprPtr cond;          // For's filter
  std::vector<ExprPtr> conds;  // If
  std::vector<Body> bodies;
  std::vector<std::string> targets;  // For, Set; Macro: parameter names
  std::vector<ExprPtr> defaults;     // Macro: default per parameter (null: none)
};

// Throws TemplateError naming the construct and its position for anything outside the grammar
// above or the statements: if / elif / else, for / else, set (incl. ns.attr and block set), macro,
// call, filter, break, continue, generation, raw. ({% include %}, {% extends %}, {% import %} and
// the like are refused by name.)
Body parse(const std::vector<Token>& tokens, const Source& src);

}  // namespace magellano::chat::jinja
