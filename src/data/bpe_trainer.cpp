#include "magellano/data/bpe_trainer.hpp"

#include <algorithm>
#include <queue>

#include "magellano/data/byte_alphabet.hpp"
#include "magellano/data/pretokenizer.hpp"
#include "magellano/data/text_chunks.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {
namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";

uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

struct Word {
  std::vector<uint32_t> symbols;
  int64_t count;
};

// Everything the merge loop updates.
struct PairStats {
  std::unordered_map<uint64_t, int64_t> count;                 // pair -> weighted occurrences
  std::unordered_map<uint64_t, std::vector<uint32_t>> words;   // pair -> words that held it
  // Max-heap of (count, ~key): highest count first, then the smallest key.
  std::priority_queue<std::pair<int64_t, uint64_t>> heap;

  void push(uint64_t key) {
    const int64_t c = count[key];
    if (c > 0) heap.push({c, ~key});
  }
  // The pair to merge next (and its count), or false when none is left.
  bool pop_best(uint64_t* key, int64_t* c) {
    while (!heap.empty()) {
      const auto [entry_count, inv] = heap.top();
      heap.pop();
      const uint64_t k = ~inv;
      const int64_t current = count[k];
      if (current == entry_count) {
        *key = k;
        *c = current;
        return true;
      }
      if (current > 0 && current < entry_count) heap.push({current, inv});
    }
    return false;
  }
};

// Merges every non-overlapping (a, b) in w left to right into z; updates stats.
void merge_word(Word& w, uint32_t word_index, uint32_t a, uint32_t b, uint32_t z, PairStats& s,
                std::vector<uint64_t>& touched) {
  auto& sym = w.symbols;
  for (size_t i = 0; i + 1 < sym.size(); ++i) s.count[pair_key(sym[i], sym[i + 1])] -= w.count;
  size_t out = 0;
  for (size_t i = 0; i < sym.size(); ++i) {
    if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
      sym[out++] = z;
      ++i;
    } else {
      sym[out++] = sym[i];
    }
  }
  sym.resize(out);
  for (size_t i = 0; i + 1 < sym.size(); ++i) {
    const uint64_t key = pair_key(sym[i], sym[i + 1]);
    s.count[key] += w.count;
    if (sym[i] == z || sym[i + 1] == z) {
      s.words[key].push_back(word_index);
      touched.push_back(key);
    }
  }
}

}  // namespace

void WordCounter::add_text(std::string_view text) {
  bytes_ += text.size();
  for (;;) {
    const size_t special = text.find(kEndOfText);
    for_each_pretoken(text.substr(0, special), [&](std::string_view piece) {
      auto it = counts_.find(std::string(piece));
      if (it == counts_.end()) counts_.emplace(std::string(piece), 1);
      else ++it->second;
    });
    if (special == std::string_view::npos) break;
    text.remove_prefix(special + kEndOfText.size());
  }
}

void WordCounter::add_files(const std::vector<std::filesystem::path>& inputs) {
  for (const auto& path : inputs) {
    TextChunkReader reader(path, 8 << 20);
    std::string_view chunk;
    while (reader.next(&chunk)) add_text(chunk);
  }
}

BpeModel train_bpe(const WordCounter& counter, size_t vocab_size, BpeTrainReport* report) {
  if (vocab_size < 257 || vocab_size > (size_t{1} << 31))
    throw Error("vocabulary size " + std::to_string(vocab_size) +
                " is out of range: it must hold the 256 bytes and <|endoftext|> (>= 257).");
  if (counter.counts().empty())
    throw Error("the training corpus is empty: give train-tokenizer files holding text.");

  BpeModel model;
  const auto& order = byte_order();
  std::array<uint32_t, 256> byte_id{};
  for (uint32_t i = 0; i < 256; ++i) {
    model.tokens.emplace_back(1, static_cast<char>(order[i]));
    byte_id[order[i]] = i;
  }

  // Words in a fixed order (sorted by bytes) so nothing depends on hash-map iteration.
  std::vector<std::pair<std::string_view, uint64_t>> sorted(counter.counts().begin(),
                                                            counter.counts().end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  PairStats stats;
  for (const auto& [text, n] : sorted) {
    Word w{{}, static_cast<int64_t>(n)};
    for (unsigned char c : text) w.symbols.push_back(byte_id[c]);
    const auto index = static_cast<uint32_t>(words.size());
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      const uint64_t key = pair_key(w.symbols[i], w.symbols[i + 1]);
      stats.count[key] += w.count;
      auto& list = stats.words[key];
      if (list.empty() || list.back() != index) list.push_back(index);
    }
    words.push_back(std::move(w));
  }
  for (const auto& [key, c] : stats.count) stats.heap.push({c, ~key});

  // A merge whose bytes already form a token (e.g. (a, bc) after (ab, c)) reuses that id.
  std::unordered_map<std::string, uint32_t> id_of;
  for (uint32_t i = 0; i < 256; ++i) id_of.emplace(model.tokens[i], i);
  std::vector<uint32_t> last_visit(words.size(), UINT32_MAX);
  std::vector<uint64_t> touched;
  const size_t target_tokens = vocab_size - 1;  // the last id is <|endoftext|>
  uint64_t key;
  int64_t best_count;
  while (model.tokens.size() < target_tokens && stats.pop_best(&key, &best_count)) {
    const auto a = static_cast<uint32_t>(key >> 32), b = static_cast<uint32_t>(key);
    std::string joined = model.tokens[a] + model.tokens[b];
    auto [it, is_new] = id_of.emplace(joined, static_cast<uint32_t>(model.tokens.size()));
    const uint32_t z = it->second;
    if (is_new) model.tokens.push_back(std::move(joined));
    const auto step = static_cast<uint32_t>(model.merges.size());
    model.merges.emplace_back(a, b);
    touched.clear();
    const std::vector<uint32_t> holders = std::move(stats.words[key]);
    stats.words.erase(key);
    for (uint32_t wi : holders) {
      if (last_visit[wi] == step) continue;
      last_visit[wi] = step;
      merge_word(words[wi], wi, a, b, z, stats, touched);
    }
    stats.count.erase(key);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t t : touched) stats.push(t);
  }
  if (report) {
    report->merges = model.merges.size();
    report->words = words.size();
    report->stopped_early = model.tokens.size() < target_tokens;
  }
  model.special_ids.push_back(static_cast<uint32_t>(model.tokens.size()));
  model.tokens.emplace_back(kEndOfText);
  return model;
}

}  // namespace magellano::data
