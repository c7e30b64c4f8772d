#include "llama_spm_reference.hpp"

#include <cstdio>
#include <map>
#include <queue>
#include <stdexcept>
#include <unordered_map>

namespace mgtest {
namespace {

struct Symbol {
  int prev, next;
  size_t begin, n;
};

struct Bigram {
  int left, right;
  double score;
  size_t size;
  bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
};

size_t utf8_len(unsigned char c) {  // llama.cpp's unicode_len_utf8: by the high nibble
  static const size_t lookup[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[c >> 4];
}

}  // namespace

std::vector<uint32_t> llama_spm_tokenize(const std::vector<std::string>& tokens, const std::vector<double>& scores,
                                         std::string_view raw, bool add_space_prefix) {
  std::unordered_map<std::string, uint32_t> id_of;
  for (uint32_t i = 0; i < tokens.size(); ++i) id_of.emplace(tokens[i], i);
  std::string text;
  if (add_space_prefix) text = " ";
  text += raw;
  std::string escaped;
  for (char c : text) escaped += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  text = escaped;

  std::vector<Symbol> symbols;
  for (size_t offs = 0; offs < text.size();) {
    const size_t n = std::min(utf8_len(static_cast<unsigned char>(text[offs])), text.size() - offs);
    const int index = static_cast<int>(symbols.size());
    offs += n;
    symbols.push_back({index - 1, offs == text.size() ? -1 : index + 1, offs - n, n});
  }
  std::priority_queue<Bigram> queue;
  std::map<std::string, std::pair<int, int>> rev_merge;
  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string joined = text.substr(symbols[left].begin, symbols[left].n + symbols[right].n);
    const auto it = id_of.find(joined);
    if (it == id_of.end()) return;
    queue.push({left, right, scores[it->second], joined.size()});
    rev_merge[joined] = {left, right};
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  std::vector<uint32_t> out;
  auto resegment = [&](auto& self, const Symbol& s) -> void {
    const std::string t = text.substr(s.begin, s.n);
    if (const auto it = id_of.find(t); it != id_of.end()) {
      out.push_back(it->second);
      return;
    }
    if (const auto p = rev_merge.find(t); p != rev_merge.end()) {
      self(self, symbols[p->second.first]);
      self(self, symbols[p->second.second]);
      return;
    }
    for (unsigned char c : t) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", c);
      const auto it = id_of.find(name);
      if (it == id_of.end()) throw std::runtime_error("no byte token " + std::string(name));
      out.push_back(it->second);
    }
  };
  if (!symbols.empty())
    for (int i = 0; i != -1; i = symbols[i].next) resegment(resegment, symbols[i]);
  return out;
}

}  // namespace mgtest
