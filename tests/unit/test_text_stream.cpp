// The generated text as it streams: stop strings (also across token boundaries), the held-back
// tail that may still become a stop string, and UTF-8 sequences split across tokens.
#include <gtest/gtest.h>

#include "magellano/generate/text_stream.hpp"

using magellano::generate::incomplete_utf8_tail;
using magellano::generate::TextStream;

namespace {

// Feeds the pieces one by one, collecting what take_ready() releases after each.
std::string feed(TextStream& s, const std::vector<std::string>& pieces) {
  std::string shown;
  for (const auto& p : pieces) {
    s.append(p);
    shown += s.take_ready();
    if (s.done()) break;
  }
  return shown;
}

}  // namespace

TEST(TextStream, NoStopsReleasesEverythingAtOnce) {
  TextStream s;
  EXPECT_FALSE(s.append("Hello"));
  EXPECT_EQ(s.take_ready(), "Hello");
  EXPECT_FALSE(s.append(", world"));
  EXPECT_EQ(s.take_ready(), ", world");
  EXPECT_EQ(s.take_ready(), "");
  EXPECT_EQ(s.text(), "Hello, world");
}

TEST(TextStream, StopInsideOneTokenCutsBeforeIt) {
  TextStream s({"\n\n"});
  EXPECT_EQ(feed(s, {"one", " two\n\nthree", " four"}), "one two");
  EXPECT_TRUE(s.done());
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.text(), "one two");
}

TEST(TextStream, StopSpanningTokensIsFoundAndNeverShown) {
  TextStream s({"END"});
  std::string shown;
  s.append("the E");
  shown += s.take_ready();
  EXPECT_EQ(shown, "the ");  // "E" may start "END": held back
  s.append("N");
  shown += s.take_ready();
  EXPECT_EQ(shown, "the ");  // "EN" too
  EXPECT_TRUE(s.append("D and more"));
  shown += s.take_ready();
  EXPECT_EQ(shown, "the ");
  EXPECT_EQ(s.text(), "the ");
}

TEST(TextStream, HeldBackPrefixCompletedByTheNextTokenStops) {
  TextStream s({"END"});
  s.append("the EN");
  EXPECT_EQ(s.take_ready(), "the ");
  EXPECT_TRUE(s.append("Dx"));
  EXPECT_EQ(s.take_ready(), "");
  EXPECT_EQ(s.text(), "the ");
}

TEST(TextStream, HeldBackPrefixReleasedWhenItTurnsOutNotToBeAStop) {
  TextStream s({"END"});
  s.append("the EN");
  EXPECT_EQ(s.take_ready(), "the ");
  EXPECT_FALSE(s.append("TRY"));
  EXPECT_EQ(s.take_ready(), "ENTRY");
  s.append("E");
  EXPECT_EQ(s.take_ready(), "");
  s.finish();  // the end of generation releases the held-back tail
  EXPECT_EQ(s.take_ready(), "E");
  EXPECT_EQ(s.text(), "the ENTRYE");
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
  TextStream s({"bb", "abc", "zz"});
  // Two stops complete in one append: "abc" at 1 and "bb" at 4.
  s.append("xab");
  EXPECT_TRUE(s.append("cbb"));  // "abc" at 1 and "bb" at 4: the earlier one wins
  EXPECT_EQ(s.text(), "x");
}

TEST(TextStream, StopStringAcrossThreeTokens) {
  TextStream s({"<|stop|>"});
  EXPECT_EQ(feed(s, {"answer: 42", "<|", "st", "op|", ">", "ignored"}), "answer: 42");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.text(), "answer: 42");
}

TEST(TextStream, StopAtTheVeryStart) {
  TextStream s({"###"});
  EXPECT_TRUE(s.append("###"));
  EXPECT_EQ(s.take_ready(), "");
  EXPECT_EQ(s.text(), "");
}

TEST(TextStream, Utf8SplitAcrossTokensIsHeldBack) {
  // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80.
  TextStream s;
  s.append("caf\xC3");
  EXPECT_EQ(s.take_ready(), "caf");
  s.append("\xA9 \xE2\x82");
  EXPECT_EQ(s.take_ready(), "\xC3\xA9 ");
  s.append("\xAC\xF0");
  EXPECT_EQ(s.take_ready(), "\xE2\x82\xAC");
  s.append("\x9F");
  EXPECT_EQ(s.take_ready(), "");
  s.append("\x98\x80!");
  EXPECT_EQ(s.take_ready(), "\xF0\x9F\x98\x80!");
}

TEST(TextStream, IncompleteUtf8AtTheEndComesOutAsBytes) {
  TextStream s;
  s.append("x\xE2\x82");
  EXPECT_EQ(s.take_ready(), "x");
  s.finish();
  EXPECT_EQ(s.take_ready(), "\xE2\x82");
}

TEST(TextStream, StopStringWithMultibyteCharacters) {
  TextStream s({"\xE2\x82\xAC\xE2\x82\xAC"});  // "€€"
  EXPECT_EQ(feed(s, {"price 5", "\xE2\x82", "\xAC\xE2", "\x82\xAC", " more"}), "price 5");
  EXPECT_EQ(s.text(), "price 5");
}

TEST(TextStream, IncompleteUtf8Tail) {
  EXPECT_EQ(incomplete_utf8_tail(""), 0u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xC3\xA9"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\x80\x80"), 0u);      // stray continuation bytes: nothing to wait for
  EXPECT_EQ(incomplete_utf8_tail("\x80\x80\x80\x80\x80"), 0u);
}
