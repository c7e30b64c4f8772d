// Layer patterns: "(MMME)x9MMM", "(SSSE)x3S", "(MMA)x4" and lists of "mamba" / "mamba2" /
// "attention" / "moe".
//
// Grammar (spaces ignored):  seq := item*    item := (letter | '(' seq ')') ['x' count]
// letter := 'M' | 'S' | 'A' | 'E' | 'F' (kLayerNames)
// count := 1..9999 (decimal). A pattern must give at least one layer.
// Bounded: groups nest at most kMaxDepth deep (the parser recurses once per level) and the
// expansion stops at kMaxLayers, checked before anything is copied.
#include <cctype>

#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"
#include "magellano/train/config.hpp"

namespace magellano::train {
namespace {

constexpr int64_t kMaxLayers = 100000;
constexpr int kMaxDepth = 16;

struct LayerName {
  LayerKind kind;
  char letter;
  const char* name;  // in layer lists
};
constexpr LayerName kLayerNames[] = {{LayerKind::mamba, 'M', "mamba"},
                                     {LayerKind::mamba2, 'S', "mamba2"},
                                     {LayerKind::attention, 'A', "attention"},
                                     {LayerKind::moe, 'E', "moe"},
                                     {LayerKind::mlp, 'F', "mlp"}};
const LayerName* by_letter(char c) {
  for (const auto& n : kLayerNames)
    if (n.letter == c) return &n;
  return nullptr;
}
char letter_of(LayerKind k) {
  for (const auto& n : kLayerNames)
    if (n.kind == k) return n.letter;
  return '?';
}

class PatternParser {
 public:
  PatternParser(const std::string& s, const std::string& what) : s_(s), what_(what) {}

  std::vector<LayerKind> parse() {
    auto out = seq(0);
    skip_spaces();
    if (pos_ < s_.size()) fail(s_[pos_] == ')' ? "')' without a matching '('" : unexpected());
    if (out.empty())
      fail("it gives no layers; use 'M' (Mamba), 'S' (Mamba2), 'A' (attention), 'E' (MoE) and 'F' (MLP), e.g. "
           "\"(MMME)x9MMM\"");
    return out;
  }

 private:
  std::vector<LayerKind> seq(int depth) {
    std::vector<LayerKind> out;
    for (;;) {
      skip_spaces();
      if (pos_ >= s_.size()) break;
      const char c = s_[pos_];
      std::vector<LayerKind> item;
      if (const LayerName* n = by_letter(c)) {
        item.push_back(n->kind);
        ++pos_;
      } else if (c == '(') {
        if (depth >= kMaxDepth) fail("groups nested more than " + std::to_string(kMaxDepth) + " deep");
        const size_t open = pos_++;
        item = seq(depth + 1);
        skip_spaces();
        if (pos_ >= s_.size() || s_[pos_] != ')') {
          pos_ = open;
          fail("'(' is never closed");
        }
        if (item.empty()) fail("an empty group '()'");
        ++pos_;
      } else if (c == ')') {
        if (depth == 0) fail("')' without a matching '('");
        break;
      } else {
        fail(unexpected());
      }
      skip_spaces();
      int64_t count = 1;
      if (pos_ < s_.size() && s_[pos_] == 'x') {
        ++pos_;
        skip_spaces();
        const size_t start = pos_;
        count = 0;
        while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
          count = count * 10 + (s_[pos_] - '0');
          if (count > 9999) fail("a repeat count above 9999");
          ++pos_;
        }
        if (pos_ == start) fail("'x' must be followed by a repeat count, e.g. \"(MMME)x9\"");
        if (count < 1) {
          pos_ = start;
          fail("a repeat count of 0");
        }
      }
      if (static_cast<int64_t>(out.size() + item.size() * count) > kMaxLayers)
        fail("more than " + std::to_string(kMaxLayers) + " layers");
      for (int64_t r = 0; r < count; ++r) out.insert(out.end(), item.begin(), item.end());
    }
    return out;
  }

  void skip_spaces() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  std::string unexpected() const {
    return "unexpected '" + excerpt(std::string_view(&s_[pos_], 1)) +
           "' (use 'M' = Mamba, 'S' = Mamba2, 'A' = attention, 'E' = MoE, 'F' = MLP, groups '(...)' and repeats 'xN')";
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("config: " + what_ + " \"" + excerpt(s_) + "\" is not a valid layer pattern: " + why +
                " at position " + std::to_string(pos_ + 1) + ".");
  }

  const std::string& s_;
  std::string what_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<LayerKind> parse_layer_pattern(const std::string& pattern, const std::string& what) {
  return PatternParser(pattern, what).parse();
}

std::vector<LayerKind> parse_layer_list(const nlohmann::json& list, const std::string& what) {
  if (!list.is_array())
    throw Error("config: " + what + " must be a list of \"mamba\" / \"mamba2\" / \"attention\" / \"moe\" / \"mlp\".");
  if (list.empty()) throw Error("config: " + what + " is empty; give at least one layer.");
  if (list.size() > static_cast<size_t>(kMaxLayers))
    throw Error("config: " + what + " has " + std::to_string(list.size()) + " layers, more than " +
                std::to_string(kMaxLayers) + ".");
  std::vector<LayerKind> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& v = list[i];
    const std::string s = v.is_string() ? v.get<std::string>() : std::string();
    const LayerName* found = nullptr;
    for (const auto& n : kLayerNames)
      if (s == n.name || (s.size() == 1 && s[0] == n.letter)) found = &n;
    if (!found)
      throw Error("config: " + what + "[" + std::to_string(i) +
                  "] must be \"mamba\", \"mamba2\", \"attention\", \"moe\" or \"mlp\", got " + json_excerpt(v) + ".");
    out.push_back(found->kind);
  }
  return out;
}

std::string layer_string(const std::vector<LayerKind>& layers) {
  std::string s;
  for (auto k : layers) s += letter_of(k);
  return s;
}

}  // namespace magellano::train
