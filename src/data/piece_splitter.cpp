// PieceSplitter: Split steps as tokenizers' NormalizedString::split does them (pattern.rs
// find_matches, then the behavior), then ByteLevel.
#include "magellano/data/piece_splitter.hpp"

#include <algorithm>
#include <string>

#include "magellano/data/pretokenizer.hpp"

namespace magellano::data {
namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

// The whole of text as consecutive spans, each a regex match or a stretch between matches
// (tokenizers' Pattern::find_matches; an empty match only marks a cut).
std::vector<Span> find_matches(const SplitRegex& regex, std::string_view text, bool invert) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (size_t from = 0; from <= text.size();) {
    const auto m = regex.find(text, from);
    if (!m) break;
    if (m->begin > prev) spans.push_back({prev, m->begin, invert});
    spans.push_back({m->begin, m->end, !invert});
    prev = m->end;
    if (m->end > m->begin) {
      from = m->end;
    } else {  // an empty match: go on one symbol later
      if (m->end == text.size()) break;
      from = m->end + 1;
      while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
    }
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

// Applies one step's behavior: the pieces of text (non-empty views), appended to out.
void split_step(const SplitStep& step, std::string_view text, std::vector<std::string_view>& out) {
  const std::vector<Span> spans = find_matches(step.regex, text, step.invert);
  std::vector<std::pair<size_t, size_t>> pieces;
  switch (step.behavior) {
    case SplitBehavior::Isolated:
      for (const Span& s : spans) pieces.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) pieces.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::Contiguous:
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        const bool join = step.behavior == SplitBehavior::Contiguous ? s.is_match == previous_match
                                                                     : s.is_match && !previous_match;
        if (join && !pieces.empty()) pieces.back().second = s.end;
        else pieces.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {  // the mirror image, walked from the end
      bool previous_match = false;
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.is_match && !previous_match && !pieces.empty()) pieces.back().first = s.begin;
        else pieces.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  for (const auto& [b, e] : pieces)
    if (e > b) out.push_back(text.substr(b, e - b));
}

}  // namespace

void PieceSplitter::for_each_piece(std::string_view segment,
                                   const std::function<void(std::string_view)>& f) const {
  if (segment.empty()) return;
  std::vector<std::string_view> pieces{segment}, next;
  for (const SplitStep& step : splits) {
    next.clear();
    for (std::string_view p : pieces) split_step(step, p, next);
    pieces.swap(next);
  }
  std::string prefixed;
  for (std::string_view p : pieces) {
    if (add_prefix_space && p.front() != ' ') {
      prefixed.assign(1, ' ');
      prefixed.append(p);
      p = prefixed;
    }
    if (byte_level_regex) for_each_pretoken(p, f);
    else f(p);
  }
}

}  // namespace magellano::data
