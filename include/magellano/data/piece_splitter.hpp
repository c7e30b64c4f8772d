// The pre-tokenizer of a byte-level BPE tokenizer: how a stretch of text between added tokens is
// cut into the pieces that BPE then encodes one by one. It is what tokenizer.json's
// "pre_tokenizer" can say, as Hugging Face `tokenizers` runs it:
//   1. Split steps, in order (a Sequence of Split pre-tokenizers): each cuts every piece that the
//      step before made, by a regex (regex_split.hpp) and a behavior (below), optionally inverted;
//   2. ByteLevel, last: with add_prefix_space a piece not starting with U+0020 gets one prepended;
//      with use_regex the piece is cut again by GPT-2's pattern (pretokenizer.hpp).
// Empty pieces are dropped at every step. GPT-2's own files mean: no Split, ByteLevel with
// use_regex and without add_prefix_space (the default-constructed PieceSplitter).
#pragma once
#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include "magellano/data/regex_split.hpp"

namespace magellano::data {

// tokenizers' SplitDelimiterBehavior: what becomes of the matches (and, inverted, of the text
// between them).
enum class SplitBehavior {
  Removed,             // matches are dropped
  Isolated,            // every match and every stretch between matches is a piece
  MergedWithPrevious,  // a match joins the piece before it
  MergedWithNext,      // a match joins the piece after it
  Contiguous,          // consecutive matches form one piece
};

struct SplitStep {
  SplitRegex regex;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;  // the stretches between matches play the matches' part
};

struct PieceSplitter {
  std::vector<SplitStep> splits;
  bool byte_level_regex = true;   // ByteLevel's use_regex: GPT-2's pattern last
  bool add_prefix_space = false;  // ByteLevel's add_prefix_space

  // Calls f(piece) for every piece of segment, in order. A piece is a view into segment, or, with
  // add_prefix_space, into a temporary that lives until f returns.
  void for_each_piece(std::string_view segment, const std::function<void(std::string_view)>& f) const;
};

}  // namespace magellano::data
