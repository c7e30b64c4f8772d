#include "magellano/data/tokenizer.hpp"

#include <algorithm>
#include <thread>

#include "bpe_word.hpp"
#include "char_bpe.hpp"
#include "magellano/data/hf_tokenizer_json.hpp"
#include "magellano/data/pretokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "pair_table.hpp"

namespace magellano::data {
namespace fs = std::filesystem;
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

constexpr size_t kMaxCachedPieces = 1 << 20;  // cleared when it grows past this
constexpr size_t kMaxCachedPieceBytes = 64;   // longer pieces are rare: not cached
constexpr size_t kMinBytesPerThread = 256 << 10;

bool ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

// Ids of pieces already encoded: piece bytes -> (offset, count) into `ids`.
struct Tokenizer::PieceCache {
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> map;
  std::vector<uint32_t> ids;
  std::vector<uint32_t> scratch;
};

TokenizerSpec gpt2_spec(const BpeModel& model) {
  TokenizerSpec spec;
  for (uint32_t id : model.special_ids) {
    AddedToken t;
    t.content = model.tokens[id];
    t.id = id;
    t.special = true;
    t.normalized = false;
    spec.added.push_back(std::move(t));
    if (model.tokens[id] == "<|endoftext|>") spec.eos_ids = {id};
  }
  return spec;
}

Tokenizer::Tokenizer(BpeModel model) : Tokenizer(model, gpt2_spec(model)) {}

Tokenizer::Tokenizer(BpeModel model, TokenizerSpec spec)
    : model_(std::move(model)), spec_(std::move(spec)), added_(spec_.added, spec_.normalizer) {
  const size_t V = model_.tokens.size();
  // The BPE vocabulary: every id but the special ones (tokens no merge makes).
  std::vector<bool> outside(V, false);
  for (uint32_t id : model_.special_ids) outside[id] = true;
  if (spec_.sentencepiece) {
    const SentencePieceSpec& sp = *spec_.sentencepiece;
    if (sp.pieces.size() != V)
      throw Error("tokenizer has " + std::to_string(sp.pieces.size()) + " SentencePiece strings for " +
                  std::to_string(V) + " ids.");
    std::vector<bool> in_vocab(V);
    for (size_t i = 0; i < V; ++i) in_vocab[i] = !outside[i];
    char_bpe_ = std::make_unique<CharBpe>(sp.pieces, in_vocab, model_.merges, sp.byte_fallback, sp.unk_id, sp.fuse_unk,
                                          spec_.ignore_merges);
  } else {
    build_byte_level(outside);
  }
  check_spec_ids();
  cut_rule_ = choose_cut_rule();
}

void Tokenizer::build_byte_level(const std::vector<bool>& outside) {
  const size_t V = model_.tokens.size();
  std::unordered_map<std::string_view, uint32_t> id_of;
  id_of.reserve(V * 2);
  for (uint32_t i = 0; i < V; ++i)
    if (!outside[i]) id_of.emplace(model_.tokens[i], i);
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    auto found = id_of.find(std::string_view(&c, 1));
    if (found == id_of.end())
      throw Error("tokenizer has no token for byte " + std::to_string(b) +
                  "; a byte-level BPE needs all 256.");
    byte_ids_[b] = found->second;
  }
  merges_ = std::make_unique<PairTable>(model_.merges.size());
  for (uint32_t r = 0; r < model_.merges.size(); ++r) {
    const auto [a, b] = model_.merges[r];
    const std::string joined = model_.tokens[a] + model_.tokens[b];
    const auto it = id_of.find(joined);
    if (it == id_of.end()) throw Error("tokenizer merge " + std::to_string(r) + " makes no token.");
    // A pair listed twice keeps its first (lowest) rank. GPT-2's files list none twice.
    if (merges_->find(a, b) == PairTable::kMissing)
      merges_->insert(a, b, (uint64_t{r} << 32) | it->second);
  }
  if (spec_.ignore_merges)
    for (const auto& [bytes, id] : id_of) whole_.emplace(std::string(bytes), id);
}

void Tokenizer::check_spec_ids() {
  const size_t V = model_.tokens.size();
  auto check = [&](uint32_t id, const char* what) {
    if (id >= V)
      throw Error("tokenizer " + std::string(what) + " id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(V) + " ids.");
  };
  special_.assign(V, false);
  for (const AddedToken& t : spec_.added) {
    check(t.id, "added token");
    if (t.special) special_[t.id] = true;
  }
  for (uint32_t id : spec_.template_prefix) check(id, "template");
  for (uint32_t id : spec_.template_suffix) check(id, "template");
  if (spec_.bos_id) check(*spec_.bos_id, "beginning-of-text");
  for (uint32_t id : spec_.eos_ids) check(id, "end-of-text");
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const fs::path& dir) {
  if (fs::is_directory(dir) && fs::exists(dir / "tokenizer.json")) return load_hf_tokenizer(dir);
  return Tokenizer(load_bpe_model(dir));
}

bool has_tokenizer_files(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") ||
         (fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe")) ||
         (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"));
}

std::optional<uint32_t> Tokenizer::special_id(std::string_view name) const {
  for (const AddedToken& t : spec_.added)
    if (t.content == name) return t.id;
  return std::nullopt;
}

std::optional<uint32_t> Tokenizer::eot_id() const {
  if (spec_.eos_ids.empty()) return std::nullopt;
  return spec_.eos_ids.front();
}

void Tokenizer::encode_piece(std::string_view piece, std::vector<uint32_t>& out, PieceCache& cache) const {
  if (char_bpe_) {
    if (piece.size() > kMaxCachedPieceBytes) {
      char_bpe_->encode(piece, out);
      return;
    }
    if (auto it = cache.map.find(piece); it != cache.map.end()) {
      const auto [offset, count] = it->second;
      out.insert(out.end(), cache.ids.begin() + offset, cache.ids.begin() + offset + count);
      return;
    }
    const size_t before = out.size();
    char_bpe_->encode(piece, out);
    remember(piece, std::span<const uint32_t>(out).subspan(before), cache);
    return;
  }
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (!whole_.empty()) {
    if (auto it = whole_.find(std::string(piece)); it != whole_.end()) {
      out.push_back(it->second);
      return;
    }
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
  if (cacheable) remember(piece, ids, cache);
}

void Tokenizer::remember(std::string_view piece, std::span<const uint32_t> ids, PieceCache& cache) {
  if (cache.map.size() >= kMaxCachedPieces) {
    cache.map.clear();
    cache.ids.clear();
  }
  cache.map.emplace(std::string(piece), std::make_pair(static_cast<uint32_t>(cache.ids.size()),
                                                        static_cast<uint32_t>(ids.size())));
  cache.ids.insert(cache.ids.end(), ids.begin(), ids.end());
}

void Tokenizer::encode_with_cache(std::string_view text, SpecialTokens special,
                                  std::vector<uint32_t>& out, PieceCache& cache) const {
  bool text_start = true;  // nothing before this stretch (Metaspace's prepend_scheme "first")
  const auto piece = [&](std::string_view p) { encode_piece(p, out, cache); };
  const auto stretch = [&](std::string_view s) {
    if (!spec_.sentencepiece) spec_.splitter.for_each_piece(s, piece);
    else if (spec_.sentencepiece->metaspace) spec_.sentencepiece->metaspace->for_each_piece(s, text_start, piece);
    else piece(s);
    text_start = false;
  };
  if (added_.empty()) {
    stretch(text);
    return;
  }
  added_.split(text, special == SpecialTokens::Allowed, stretch, [&](const AddedToken& t) {
    out.push_back(t.id);
    text_start = false;
  });
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
  if (threads <= 1 || cut_rule_ == CutRule::None) {
    out.reserve(text.size() / 3);
    encode_append(text, special, out);
    return out;
  }
  // One contiguous share per thread, each cut at a safe cut.
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

std::vector<uint32_t> Tokenizer::apply_template(std::vector<uint32_t> ids) const {
  ids.insert(ids.begin(), spec_.template_prefix.begin(), spec_.template_prefix.end());
  ids.insert(ids.end(), spec_.template_suffix.begin(), spec_.template_suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const uint32_t> ids, bool skip_special) const {
  std::string out;
  std::vector<std::string> pieces;
  for (uint32_t id : ids) {
    if (id >= model_.tokens.size())
      throw Error("cannot decode token id " + std::to_string(id) + ": the vocabulary has " +
                  std::to_string(model_.tokens.size()) + " ids. Wrong tokenizer for these ids?");
    if (skip_special && special_[id]) continue;
    if (spec_.sentencepiece) pieces.push_back(spec_.sentencepiece->pieces[id]);
    else out += model_.tokens[id];
  }
  return spec_.sentencepiece ? spec_.sentencepiece->decoder.decode(std::move(pieces)) : out;
}

// ---- safe cuts ----------------------------------------------------------------------------------

Tokenizer::CutRule Tokenizer::choose_cut_rule() const {
  const PieceSplitter& sp = spec_.splitter;
  // Every stretch gets its own prefix space; SentencePiece-style: "▁" (and without a pre-tokenizer
  // a stretch is one BPE word).
  if (sp.add_prefix_space || spec_.sentencepiece) return CutRule::None;
  for (const AddedToken& t : spec_.added) {
    if (t.content.find('\n') != std::string::npos) return CutRule::None;
    // A strip that could reach over a '\n' next to a letter or digit.
    if ((t.rstrip && ascii_alnum(t.content.back())) || (t.lstrip && ascii_alnum(t.content.front())))
      return CutRule::None;
  }
  const bool strips = std::any_of(spec_.added.begin(), spec_.added.end(),
                                  [](const AddedToken& t) { return t.lstrip || t.rstrip; });
  if (sp.splits.empty() && !strips) return CutRule::Gpt2;
  for (const SplitStep& s : sp.splits)
    if (s.behavior != SplitBehavior::Isolated && s.behavior != SplitBehavior::Removed) return CutRule::None;
  // A pattern that glued a newline to a neighbouring letter or digit would show it on these.
  const char* probes[] = {"ab\ncd", "a1\n2b", "12\n34", "x.a\nb.", "it's\nok", "A\n1 ", " a\nB ",
                          "abc123\nd\n\ne", "'s\nt", "z \na\nz", "9\n9\n9"};
  auto pieces = [&](std::string_view text) {
    std::vector<std::string> out;
    sp.for_each_piece(text, [&](std::string_view p) { out.emplace_back(p); });
    return out;
  };
  for (std::string_view probe : probes) {
    const auto whole = pieces(probe);
    for (size_t p = 1; p + 1 < probe.size(); ++p) {
      if (probe[p] != '\n' || !ascii_alnum(probe[p - 1]) || !ascii_alnum(probe[p + 1])) continue;
      auto joined = pieces(probe.substr(0, p));
      const auto tail = pieces(probe.substr(p));
      joined.insert(joined.end(), tail.begin(), tail.end());
      if (joined != whole) return CutRule::None;
    }
  }
  return CutRule::NewlineBetweenAlnum;
}

bool Tokenizer::is_safe_cut(std::string_view text, size_t p) const {
  return p > 0 && p + 1 < text.size() && text[p] == '\n' && ascii_alnum(text[p - 1]) && ascii_alnum(text[p + 1]);
}

size_t Tokenizer::next_safe_split(std::string_view text, size_t from) const {
  switch (cut_rule_) {
    case CutRule::Gpt2: return data::next_safe_split(text, from);
    case CutRule::None: return text.size();
    case CutRule::NewlineBetweenAlnum:
      for (size_t p = text.find('\n', from); p != std::string_view::npos; p = text.find('\n', p + 1))
        if (is_safe_cut(text, p)) return p;
      return text.size();
  }
  return text.size();
}

size_t Tokenizer::last_safe_split(std::string_view text) const {
  switch (cut_rule_) {
    case CutRule::Gpt2: return data::last_safe_split(text);
    case CutRule::None: return 0;
    case CutRule::NewlineBetweenAlnum:
      for (size_t p = text.rfind('\n'); p != std::string_view::npos && p > 0; p = text.rfind('\n', p - 1))
        if (is_safe_cut(text, p)) return p;
      return 0;
  }
  return 0;
}

}  // namespace magellano::data
