// The text of one generated sequence as it grows token by token: where it must stop (a stop
// string, possibly spread over several tokens) and which bytes are final and may be shown.
//
// append(bytes) adds one token's bytes. The text is searched for every stop string (from where
// a new match could begin); at the earliest match the text is cut just before the stop string
// (the stop string and anything after it are not part of the text: the choice of vLLM and the
// OpenAI API; Hugging Face's generate() keeps it) and the stream is done.
// take_ready() returns the bytes that became final since the last call: all of the text except
// a tail that may still change, i.e. the longest tail that is a proper prefix of a stop string
// (it may turn out to be the start of one) and an incomplete UTF-8 sequence at the very end
// (its remaining bytes come with the next token). When the stream is done, or after finish(),
// everything left is final (an incomplete UTF-8 sequence then comes out as the bytes it is).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace magellano::generate {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops = {});
  // Adds bytes; returns true when a stop string is now complete (the stream is done).
  bool append(std::string_view bytes);
  void finish() { done_ = true; }  // no more bytes will come: release everything
  bool done() const { return done_; }
  bool stopped() const { return stopped_; }  // done because of a stop string
  const std::string& text() const { return text_; }
  // The bytes that became final since the last call (see above).
  std::string take_ready();

 private:
  std::vector<std::string> stops_;
  std::string text_;
  size_t shown_ = 0;  // bytes of text_ already returned by take_ready()
  bool done_ = false, stopped_ = false;
};

// Bytes at the end of `s` that start a UTF-8 sequence that is not complete yet (0 to 3).
size_t incomplete_utf8_tail(std::string_view s);

}  // namespace magellano::generate
