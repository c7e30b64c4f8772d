// SplitRegex: a recursive-descent parser into a node tree, and a backtracking matcher in
// continuation-passing style (each node gets "what must match after me" as a Cont chain on the C++
// stack). A quantifier over a single symbol set (\p{L}+, \s*, [^\r\n]{1,3}, the only kind the known
// patterns have) runs as a loop over a shared position stack, so a long run of letters or spaces
// costs no recursion depth.
#include "magellano/data/regex_split.hpp"

#include <array>
#include <cstdint>

#include "magellano/data/unicode_class.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {
namespace {

constexpr int kUnbounded = -1;
constexpr int kMaxGroupDepth = 100;      // nesting of groups in a pattern
// Nested match steps (a quantified group over a long run): each takes three C++ frames, so 2,000
// stay within the 8 MiB stack also under AddressSanitizer, whose frames are several times larger
// (10,000 overflowed there). Quantifiers over single symbols, all the published patterns use,
// loop and take none.
constexpr int kMaxMatchDepth = 2000;
// Match steps one find() may take: far above what a linear pattern needs (a few per symbol), far
// below what nested quantifiers like (a*)*b take on a long run (exponential backtracking).
constexpr uint64_t kStepsPerSymbol = 1000, kMinSteps = 1000000;

uint8_t class_bit(CharClass c) { return static_cast<uint8_t>(1u << static_cast<unsigned>(c)); }

// Which symbols one position of the pattern accepts.
struct SymbolSet {
  bool negated = false;
  bool any_but_newline = false;                // `.`
  std::vector<CodePointRange> ranges;          // inclusive
  uint8_t classes = 0;                         // class_bit()s accepted: \p{L} \p{N} \s
  uint8_t complement_classes = 0;              // class_bit()s whose complement is accepted: \S \P{L}
  std::array<uint64_t, 2> ascii{};             // the answer for code points < 128, filled by finish()

  bool contains_slow(uint32_t cp) const {
    bool in = any_but_newline && cp != '\n';
    for (const auto& r : ranges) in = in || (cp >= r.first && cp <= r.last);
    if (!in && (classes | complement_classes)) {
      const uint8_t bit = class_bit(char_class(cp));
      in = (classes & bit) || (complement_classes & ~bit);
    }
    return in != negated;
  }
  void finish() {
    for (uint32_t c = 0; c < 128; ++c)
      if (contains_slow(c)) ascii[c >> 6] |= uint64_t{1} << (c & 63);
  }
  bool contains(uint32_t cp) const {
    return cp < 128 ? (ascii[cp >> 6] >> (cp & 63)) & 1 : contains_slow(cp);
  }
};

}  // namespace

struct SplitRegex::Node {
  enum class Kind { Set, Seq, Alt, Repeat, LookAhead, Atomic, LineStart, LineEnd } kind;
  SymbolSet set;                     // Set
  std::vector<const Node*> kids;     // Seq (in order), Alt (in preference order), others: one
  int min = 0, max = 0;              // Repeat; max may be kUnbounded
  bool lazy = false;                 // Repeat
  bool negative = false;             // LookAhead
};

namespace {

using Node = SplitRegex::Node;

// ---- parsing ----------------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view pattern, std::vector<std::unique_ptr<Node>>& nodes) : p_(pattern), nodes_(nodes) {}

  const Node* parse() {
    const Node* root = alternation(false);
    if (i_ < p_.size()) fail("unbalanced ')'");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("tokenizer regex \"" + std::string(p_) + "\": " + what + " (at offset " + std::to_string(i_) +
                ") is not supported; Magellano runs the subset of Oniguruma that GPT-2 / GPT-4 / Llama-3 style "
                "Split patterns use.");
  }

  Node* make(Node::Kind kind) {
    nodes_.push_back(std::make_unique<Node>());
    nodes_.back()->kind = kind;
    return nodes_.back().get();
  }

  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  uint32_t next_code_point() {
    uint32_t cp;
    const auto* s = reinterpret_cast<const unsigned char*>(p_.data());
    i_ += decode_utf8(s + i_, s + p_.size(), &cp);
    if (cp == kInvalidCodePoint) fail("invalid UTF-8");
    return cp;
  }

  const Node* alternation(bool icase) {
    if (++depth_ > kMaxGroupDepth) fail("groups nested more than " + std::to_string(kMaxGroupDepth) + " deep");
    std::vector<const Node*> alts{sequence(icase)};
    while (more() && peek() == '|') {
      ++i_;
      alts.push_back(sequence(icase));
    }
    --depth_;
    if (alts.size() == 1) return alts[0];
    Node* n = make(Node::Kind::Alt);
    n->kids = std::move(alts);
    return n;
  }

  const Node* sequence(bool icase) {
    Node* n = make(Node::Kind::Seq);
    while (more() && peek() != '|' && peek() != ')') n->kids.push_back(quantified(atom(icase)));
    return n;
  }

  int number() {
    int v = 0;
    const size_t start = i_;
    while (more() && peek() >= '0' && peek() <= '9' && i_ - start < 6) v = v * 10 + (p_[i_++] - '0');
    return i_ == start ? -1 : v;
  }

  const Node* quantified(const Node* atom) {
    if (!more()) return atom;
    int min = 0, max = 0;
    const size_t at = i_;
    switch (peek()) {
      case '*': min = 0, max = kUnbounded, ++i_; break;
      case '+': min = 1, max = kUnbounded, ++i_; break;
      case '?': min = 0, max = 1, ++i_; break;
      case '{': {
        ++i_;
        min = number();
        max = min;
        if (more() && peek() == ',') {
          ++i_;
          max = number();
          if (max < 0) max = kUnbounded;
        }
        if (min < 0 || !more() || peek() != '}' || (max != kUnbounded && max < min)) {
          i_ = at;  // not a counted repetition: a literal '{' (as in Oniguruma)
          return atom;
        }
        ++i_;
        break;
      }
      default: return atom;
    }
    Node* rep = make(Node::Kind::Repeat);
    rep->kids = {atom};
    rep->min = min;
    rep->max = max;
    if (more() && peek() == '?') {
      ++i_;
      rep->lazy = true;
    } else if (more() && peek() == '+') {  // possessive: an atomic group around the greedy repeat
      ++i_;
      Node* atomic = make(Node::Kind::Atomic);
      atomic->kids = {rep};
      return atomic;
    }
    if (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) fail("a nested quantifier");
    return rep;
  }

  const Node* atom(bool icase) {
    const char c = peek();
    if (c == '(') return group(icase);
    if (c == '[') return set_node(char_class(icase));
    if (c == '^' || c == '$') {  // Ruby syntax (Oniguruma's default): line anchors
      ++i_;
      return make(c == '^' ? Node::Kind::LineStart : Node::Kind::LineEnd);
    }
    if (c == '*' || c == '+' || c == '?') fail("a quantifier with nothing before it");
    SymbolSet s;
    if (c == '.') {
      ++i_;
      s.any_but_newline = true;
    } else if (c == '\\') {
      escape(s, icase, false);
    } else {
      const uint32_t cp = next_code_point();
      check_icase(cp, icase);
      add_literal(s, cp, icase);
    }
    return set_node(std::move(s));
  }

  const Node* set_node(SymbolSet s) {
    s.finish();
    Node* n = make(Node::Kind::Set);
    n->set = std::move(s);
    return n;
  }

  const Node* group(bool icase) {
    ++i_;  // '('
    Node* wrapper = nullptr;
    if (more() && peek() == '?') {
      ++i_;
      const std::string_view rest = p_.substr(i_);
      if (rest.starts_with(":")) {
        i_ += 1;
      } else if (rest.starts_with("i:")) {
        i_ += 2;
        icase = true;
      } else if (rest.starts_with("=") || rest.starts_with("!")) {
        wrapper = make(Node::Kind::LookAhead);
        wrapper->negative = rest[0] == '!';
        i_ += 1;
      } else if (rest.starts_with(">")) {
        wrapper = make(Node::Kind::Atomic);
        i_ += 1;
      } else if (rest.starts_with("<=") || rest.starts_with("<!")) {
        fail("look-behind");
      } else {
        fail("the group syntax '(?" + std::string(rest.substr(0, 2)) + "'");
      }
    }
    const Node* inner = alternation(icase);
    if (!more() || peek() != ')') fail("a '(' without its ')'");
    ++i_;
    if (!wrapper) return inner;
    wrapper->kids = {inner};
    return wrapper;
  }

  // The ASCII letter's other case and its Unicode simple case folds (what Oniguruma's (?i) adds).
  static void add_literal(SymbolSet& s, uint32_t cp, bool icase) {
    s.ranges.push_back({cp, cp});
    if (!icase) return;
    const uint32_t lower = cp | 0x20;
    if (lower >= 'a' && lower <= 'z' && (cp < 0x80)) {
      s.ranges.push_back({lower, lower});
      s.ranges.push_back({lower & ~0x20u, lower & ~0x20u});
      if (lower == 's') s.ranges.push_back({0x17F, 0x17F});   // LATIN SMALL LETTER LONG S
      if (lower == 'k') s.ranges.push_back({0x212A, 0x212A});  // KELVIN SIGN
    }
  }

  void check_icase(uint32_t cp, bool icase) const {
    if (icase && cp >= 0x80) fail("a case-insensitive non-ASCII character");
  }

  // After a backslash: adds what the escape stands for to s. In a class, \b etc. are refused too.
  void escape(SymbolSet& s, bool icase, bool in_class) {
    ++i_;  // '\\'
    if (!more()) fail("a trailing backslash");
    const char c = p_[i_++];
    auto hex = [&](size_t digits) {
      uint32_t v = 0;
      for (size_t k = 0; k < digits; ++k) {
        if (!more() || !std::isxdigit(static_cast<unsigned char>(peek()))) fail("a malformed hex escape");
        const char h = p_[i_++];
        v = v * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
      }
      return v;
    };
    uint32_t cp;
    switch (c) {
      case 's': s.classes |= class_bit(CharClass::Space); return;
      case 'S': s.complement_classes |= class_bit(CharClass::Space); return;
      case 'p': case 'P': {
        std::string name;
        if (more() && peek() == '{') {
          const size_t close = p_.find('}', i_);
          if (close == std::string_view::npos) fail("an unterminated \\p{");
          name = std::string(p_.substr(i_ + 1, close - i_ - 1));
          i_ = close + 1;
        } else if (more()) {
          name = std::string(1, p_[i_++]);
        }
        CharClass cls;
        if (name == "L" || name == "Letter") cls = CharClass::Letter;
        else if (name == "N" || name == "Number") cls = CharClass::Number;
        else fail("the property class \\" + std::string(1, c) + "{" + name + "} (only \\p{L} and \\p{N})");
        (c == 'p' ? s.classes : s.complement_classes) |= class_bit(cls);
        return;
      }
      case 'r': cp = '\r'; break;
      case 'n': cp = '\n'; break;
      case 't': cp = '\t'; break;
      case 'f': cp = '\f'; break;
      case 'v': cp = '\v'; break;
      case 'e': cp = 0x1B; break;
      case '0': cp = 0; break;
      case 'x':
        if (more() && peek() == '{') {
          ++i_;
          const size_t close = p_.find('}', i_);
          if (close == std::string_view::npos || close == i_ || close - i_ > 6) fail("a malformed \\x{...}");
          cp = hex(close - i_);
          ++i_;
        } else {
          cp = hex(2);
        }
        break;
      case 'u': cp = hex(4); break;
      default:
        if (std::isalnum(static_cast<unsigned char>(c)))
          fail(std::string("the escape \\") + c + (in_class ? " in a class" : ""));
        cp = static_cast<unsigned char>(c);  // escaped punctuation stands for itself
    }
    check_icase(cp, icase);
    add_literal(s, cp, icase);
  }

  // One class member that is a single code point (a literal or an escape for one), for ranges.
  SymbolSet char_class(bool icase) {
    ++i_;  // '['
    SymbolSet s;
    if (more() && peek() == '^') {
      ++i_;
      s.negated = true;
    }
    bool first = true;
    while (true) {
      if (!more()) fail("a '[' without its ']'");
      const char c = peek();
      if (c == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      if (c == '[') fail("a nested class or class operation");
      if (c == '&' && p_.substr(i_).starts_with("&&")) fail("class intersection");
      uint32_t lo;
      if (c == '\\') {
        SymbolSet one;
        escape(one, false, true);
        if (one.ranges.size() != 1 || one.classes || one.complement_classes) {  // \s, \p{L}, ...
          s.classes |= one.classes;
          s.complement_classes |= one.complement_classes;
          continue;
        }
        lo = one.ranges[0].first;
      } else {
        lo = next_code_point();
      }
      uint32_t hi = lo;
      if (more() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        if (peek() == '\\') {
          SymbolSet one;
          escape(one, false, true);
          if (one.ranges.size() != 1 || one.classes || one.complement_classes) fail("a range ending in a class");
          hi = one.ranges[0].first;
        } else {
          hi = next_code_point();
        }
        if (hi < lo) fail("a reversed range");
      }
      check_icase(hi, icase);
      if (!icase) {
        s.ranges.push_back({lo, hi});
      } else {
        for (uint32_t cp = lo; cp <= hi; ++cp) add_literal(s, cp, true);
      }
    }
    return s;
  }

  std::string_view p_;
  size_t i_ = 0;
  int depth_ = 0;
  std::vector<std::unique_ptr<Node>>& nodes_;
};

// ---- matching ---------------------------------------------------------------------------------

// What must match after the current node: the rest of a sequence, another round of a repeat, or
// the end of a sub-match (record where it ended).
struct Cont {
  enum class Kind { SeqRest, RepeatNext, Record } kind;
  const Node* node = nullptr;
  size_t index = 0;            // SeqRest: next child; RepeatNext: rounds done
  size_t start = 0;            // RepeatNext: where the round began
  size_t* out = nullptr;       // Record
  const Cont* next = nullptr;
};

class Matcher {
 public:
  Matcher(std::string_view text, const std::string& pattern)
      : s_(reinterpret_cast<const unsigned char*>(text.data())), n_(text.size()), pattern_(pattern) {}

  // Matches `root` at i; the end of the first (preferred) match in *end.
  bool at(const Node* root, size_t i, size_t* end) {
    if (steps_left_ == 0) steps_left_ = kMinSteps + kStepsPerSymbol * (n_ - i);
    const Cont done{Cont::Kind::Record, nullptr, 0, 0, end, nullptr};
    return match(root, i, &done);
  }

 private:
  // One symbol of set at i: its length, or 0 when it does not match (or i is the end).
  size_t symbol(const SymbolSet& set, size_t i) const {
    if (i >= n_) return 0;
    if (s_[i] < 0x80) return set.contains(s_[i]) ? 1 : 0;
    uint32_t cp;
    const size_t len = decode_utf8(s_ + i, s_ + n_, &cp);
    return set.contains(cp) ? len : 0;
  }

  bool proceed(const Cont* k, size_t i) {
    switch (k->kind) {
      case Cont::Kind::Record: *k->out = i; return true;
      case Cont::Kind::SeqRest: return sequence(k->node, k->index, i, k->next);
      case Cont::Kind::RepeatNext:
        if (i == k->start) return k->index >= static_cast<size_t>(k->node->min) && proceed(k->next, i);  // empty round
        return repeat(k->node, k->index, i, k->next);
    }
    return false;
  }

  bool sequence(const Node* seq, size_t index, size_t i, const Cont* k) {
    if (index == seq->kids.size()) return proceed(k, i);
    if (index + 1 == seq->kids.size()) return match(seq->kids[index], i, k);
    const Cont rest{Cont::Kind::SeqRest, seq, index + 1, 0, nullptr, k};
    return match(seq->kids[index], i, &rest);
  }

  // A repeat that has done `rounds` rounds and stands at i.
  bool repeat(const Node* rep, size_t rounds, size_t i, const Cont* k) {
    const bool can_stop = rounds >= static_cast<size_t>(rep->min);
    const bool can_go = rep->max == kUnbounded || rounds < static_cast<size_t>(rep->max);
    if (rep->lazy && can_stop && proceed(k, i)) return true;
    if (can_go) {
      const Cont again{Cont::Kind::RepeatNext, rep, rounds + 1, i, nullptr, k};
      if (match(rep->kids[0], i, &again)) return true;
    }
    return !rep->lazy && can_stop && proceed(k, i);
  }

  // A repeat of one symbol set: the run's ends go on the shared stack, then are tried from the
  // preferred end (longest if greedy, shortest if lazy).
  bool repeat_symbol(const Node* rep, size_t i, const Cont* k) {
    const SymbolSet& set = rep->kids[0]->set;
    const size_t base = ends_.size();
    const size_t max = rep->max == kUnbounded ? SIZE_MAX : static_cast<size_t>(rep->max);
    ends_.push_back(i);
    for (size_t len; ends_.size() - base - 1 < max && (len = symbol(set, ends_.back())) != 0;)
      ends_.push_back(ends_.back() + len);
    const size_t count = ends_.size() - base - 1, min = static_cast<size_t>(rep->min);
    bool ok = false;
    if (count >= min) {
      if (rep->lazy) {
        for (size_t r = min; r <= count && !ok; ++r) ok = proceed(k, ends_[base + r]);
      } else {
        for (size_t r = count + 1; r-- > min && !ok;) ok = proceed(k, ends_[base + r]);
      }
    }
    ends_.resize(base);
    return ok;
  }

  bool match(const Node* x, size_t i, const Cont* k) {
    struct Depth {
      int& d;
      explicit Depth(int& depth) : d(++depth) {}
      ~Depth() { --d; }
    } depth(depth_);
    if (--steps_left_ == 0)
      throw Error("tokenizer regex \"" + pattern_ + "\": matching takes more than " + std::to_string(kStepsPerSymbol) +
                  " backtracking steps per symbol on this text (nested quantifiers?); Magellano's matcher cannot run it.");
    if (depth_ > kMaxMatchDepth)
      throw Error("tokenizer regex \"" + pattern_ + "\": matching needs more than " + std::to_string(kMaxMatchDepth) +
                  " nested steps on this text (a quantified group over a long run); Magellano's matcher cannot run it.");
    switch (x->kind) {
      case Node::Kind::Set: {
        const size_t len = symbol(x->set, i);
        return len != 0 && proceed(k, i + len);
      }
      case Node::Kind::Seq: return sequence(x, 0, i, k);
      case Node::Kind::Alt:
        for (const Node* alt : x->kids)
          if (match(alt, i, k)) return true;
        return false;
      case Node::Kind::Repeat:
        return x->kids[0]->kind == Node::Kind::Set ? repeat_symbol(x, i, k) : repeat(x, 0, i, k);
      case Node::Kind::LookAhead: {
        size_t end;
        const Cont done{Cont::Kind::Record, nullptr, 0, 0, &end, nullptr};
        return match(x->kids[0], i, &done) != x->negative && proceed(k, i);
      }
      case Node::Kind::LineStart: return (i == 0 || s_[i - 1] == '\n') && proceed(k, i);
      case Node::Kind::LineEnd: return (i == n_ || s_[i] == '\n') && proceed(k, i);
      case Node::Kind::Atomic: {  // the first way the group matches, never revisited
        size_t end;
        const Cont done{Cont::Kind::Record, nullptr, 0, 0, &end, nullptr};
        return match(x->kids[0], i, &done) && proceed(k, end);
      }
    }
    return false;
  }

  const unsigned char* s_;
  size_t n_;
  const std::string& pattern_;
  int depth_ = 0;
  uint64_t steps_left_ = 0;  // set on the first attempt of a find()
  std::vector<size_t> ends_;
};

}  // namespace

SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;
SplitRegex::~SplitRegex() = default;

SplitRegex SplitRegex::compile(std::string_view pattern) {
  SplitRegex r;
  r.pattern_ = std::string(pattern);
  Parser parser(r.pattern_, r.nodes_);
  const Node* root = parser.parse();
  // Keep the root first.
  for (size_t i = 0; i < r.nodes_.size(); ++i)
    if (r.nodes_[i].get() == root) std::swap(r.nodes_[0], r.nodes_[i]);
  return r;
}

SplitRegex SplitRegex::literal(std::string_view literal) {
  std::string escaped;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-").find(c) != std::string_view::npos) escaped += '\\';
    escaped += c;
  }
  return compile(escaped);
}

std::optional<SplitRegex::Match> SplitRegex::find(std::string_view text, size_t from) const {
  Matcher m(text, pattern_);
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = from; i <= text.size();) {
    size_t end;
    if (m.at(nodes_[0].get(), i, &end)) return Match{i, end};
    if (i == text.size()) break;
    uint32_t cp;
    i += decode_utf8(s + i, s + text.size(), &cp);
  }
  return std::nullopt;
}

}  // namespace magellano::data
