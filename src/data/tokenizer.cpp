#include "magellano/data/tokenizer.hpp"

#include <algorithm>
#include <thread>
#include <unordered_map>

#include "bpe_word.hpp"
#include "magellano/data/pretokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "pair_table.hpp"

namespace magellano::data {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

constexpr size_t kMaxCachedPieces = 1 << 20;  // cleared when it grows past this
constexpr size_t kMaxCachedPieceBytes = 64;   // longer pieces are rare: not cached
constexpr size_t kMinBytesPerThread = 256 << 10;

}  // namespace

// Ids of pieces already encoded: piece bytes -> (offset, count) into `ids`.
struct Tokenizer::PieceCache {
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> map;
  std::vector<uint32_t> ids;
  std::vector<uint32_t> scratch;
};

Tokenizer::Tokenizer(BpeModel model) : model_(std::move(model)) {
  merges_ = std::make_unique<PairTable>(model_.merges.size());
  std::unordered_map<std::string_view, uint32_t> id_of;
  id_of.reserve(model_.tokens.size() * 2);
  for (uint32_t i = 0; i < model_.tokens.size(); ++i) id_of.emplace(model_.tokens[i], i);
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    auto found = id_of.find(std::string_view(&c, 1));
    if (found == id_of.end())
      throw Error("tokenizer has no token for byte " + std::to_string(b) +
                  "; a byte-level BPE needs all 256.");
    byte_ids_[b] = found->second;
  }
  for (uint32_t r = 0; r < model_.merges.size(); ++r) {
    const auto [a, b] = model_.merges[r];
    const std::string joined = model_.tokens[a] + model_.tokens[b];
    const auto it = id_of.find(joined);
    if (it == id_of.end()) throw Error("tokenizer merge " + std::to_string(r) + " makes no token.");
    // A pair listed twice keeps its first (lowest) rank. GPT-2's files list none twice.
    if (merges_->find(a, b) == PairTable::kMissing)
      merges_->insert(a, b, (uint64_t{r} << 32) | it->second);
  }
  for (uint32_t id : model_.special_ids) specials_.emplace_back(model_.tokens[id], id);
  std::sort(specials_.begin(), specials_.end(),
            [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::filesystem::path& dir) { return Tokenizer(load_bpe_model(dir)); }

std::optional<uint32_t> Tokenizer::special_id(std::string_view name) const {
  for (const auto& [text, id] : specials_)
    if (text == name) return id;
  return std::nullopt;
}

void Tokenizer::encode_segment(std::string_view text, std::vector<uint32_t>& out,
                               PieceCache& cache) const {
  for_each_pretoken(text, [&](std::string_view piece) {
    if (piece.size() == 1) {
      out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
      return;
    }
    const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
    if (cacheable) {
      if (auto it = cache.map.find(piece); it != cache.map.end()) {
        const auto [offset, count] = it->second;
        out.insert(out.end(), cache.ids.begin() + offset, cache.ids.begin() + offset + count);
        return;
      }
    }
    auto& ids = cache.scratch;
    ids.clear();
    for (unsigned char c : piece) ids.push_back(byte_ids_[c]);
    bpe_merge_word(ids, *merges_);
    out.insert(out.end(), ids.begin(), ids.end());
    if (!cacheable) return;
    if (cache.map.size() >= kMaxCachedPieces) {
      cache.map.clear();
      cache.ids.clear();
    }
    cache.map.emplace(std::string(piece), std::make_pair(static_cast<uint32_t>(cache.ids.size()),
                                                          static_cast<uint32_t>(ids.size())));
    cache.ids.insert(cache.ids.end(), ids.begin(), ids.end());
  });
}

void Tokenizer::encode_with_cache(std::string_view text, SpecialTokens special,
                                  std::vector<uint32_t>& out, PieceCache& cache) const {
  if (special == SpecialTokens::AsText || specials_.empty()) {
    encode_segment(text, out, cache);
    return;
  }
  // Special tokens all look like <|...|>: find each "<|" and test them there.
  size_t start = 0;
  for (size_t p = text.find("<|"); p != std::string_view::npos; p = text.find("<|", p + 1)) {
    for (const auto& [literal, id] : specials_) {
      if (text.compare(p, literal.size(), literal) != 0) continue;
      encode_segment(text.substr(start, p - start), out, cache);
      out.push_back(id);
      start = p + literal.size();
      p = start - 1;
      break;
    }
  }
  encode_segment(text.substr(start), out, cache);
}

void Tokenizer::encode_append(std::string_view text, SpecialTokens special,
                              std::vector<uint32_t>& out) const {
  PieceCache cache;
  encode_with_cache(text, special, out, cache);
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text, SpecialTokens special,
                                        unsigned threads) const {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(
      std::min<size_t>(threads, std::max<size_t>(1, text.size() / kMinBytesPerThread)));
  std::vector<uint32_t> out;
  if (threads <= 1) {
    out.reserve(text.size() / 3);
    encode_append(text, special, out);
    return out;
  }
  // One contiguous share per thread, each cut at a safe line break.
  std::vector<size_t> cuts{0};
  for (unsigned t = 1; t < threads; ++t) {
    const size_t target = std::max(cuts.back(), text.size() * t / threads);
    cuts.push_back(next_safe_split(text, target));
  }
  cuts.push_back(text.size());
  std::vector<std::vector<uint32_t>> parts(threads);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      const std::string_view share = text.substr(cuts[t], cuts[t + 1] - cuts[t]);
      parts[t].reserve(share.size() / 3);
      encode_append(share, special, parts[t]);
    });
  for (auto& w : workers) w.join();
  size_t total = 0;
  for (const auto& p : parts) total += p.size();
  out.reserve(total);
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string Tokenizer::decode(std::span<const uint32_t> ids) const {
  std::string out;
  for (uint32_t id : ids) {
    if (id >= model_.tokens.size())
      throw Error("cannot decode token id " + std::to_string(id) + ": the vocabulary has " +
                  std::to_string(model_.tokens.size()) + " ids. Wrong tokenizer for these ids?");
    out += model_.tokens[id];
  }
  return out;
}

}  // namespace magellano::data
