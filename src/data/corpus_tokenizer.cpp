#include "magellano/data/corpus_tokenizer.hpp"

#include <cmath>
#include <optional>

#include "magellano/data/text_chunks.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/io/atomic_file.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::data {
namespace fs = std::filesystem;

namespace {

uint64_t count_corpus_symbols(const std::vector<fs::path>& inputs, size_t chunk_bytes) {
  uint64_t n = 0;
  for (const auto& path : inputs) {
    TextChunkReader reader(path, chunk_bytes);
    std::string_view chunk;
    while (reader.next(&chunk)) n += count_symbols(chunk);
  }
  return n;
}

}  // namespace

CorpusTokenizeReport tokenize_corpus(const Tokenizer& tokenizer, const std::vector<fs::path>& inputs,
                                     const fs::path& out_prefix,
                                     const CorpusTokenizeOptions& options) {
  if (inputs.empty()) throw Error("no input files: pass at least one with --in.");
  if (!(options.val_fraction >= 0.0 && options.val_fraction < 1.0))
    throw Error("--val-fraction must be in [0, 1); got " + std::to_string(options.val_fraction) + ".");
  for (const auto& path : inputs)
    if (!fs::is_regular_file(path)) throw Error("input file " + path.string() + " is missing.");
  std::optional<uint32_t> eot;
  if (options.eot_between_files) {
    eot = tokenizer.eot_id();
    if (!eot) throw Error("the tokenizer has no end-of-text token (<|endoftext|>, or a tokenizer.json folder's "
                          "eos_token_id) to put between files.");
  }

  CorpusTokenizeReport report;
  const bool split = options.val_fraction > 0.0;
  uint64_t train_symbols = UINT64_MAX;
  if (split) {
    report.characters = count_corpus_symbols(inputs, options.chunk_bytes);
    // Same arithmetic as Python's int(n * 0.9) for val_fraction 0.1.
    train_symbols = static_cast<uint64_t>(
        std::floor(static_cast<double>(report.characters) * (1.0 - options.val_fraction)));
  }

  report.train_path = fs::path(out_prefix.string() + ".train.tok");
  if (split) report.val_path = fs::path(out_prefix.string() + ".val.tok");
  if (!out_prefix.parent_path().empty()) fs::create_directories(out_prefix.parent_path());
  // Leftovers of an earlier tokenize to this prefix that was killed while writing.
  io::remove_stale_temporaries(report.train_path);
  io::remove_stale_temporaries(out_prefix.string() + ".val.tok");
  TokenFileWriter train(report.train_path, tokenizer.vocab_size());
  std::optional<TokenFileWriter> val;
  if (split) val.emplace(report.val_path, tokenizer.vocab_size());

  uint64_t symbols_seen = 0, characters = 0;
  bool in_val = false;
  std::vector<uint32_t> ids;
  auto emit = [&](std::string_view text) {
    ids = tokenizer.encode(text, options.special, options.threads);
    (in_val ? *val : train).append(ids);
  };
  const std::vector<uint32_t> no_ids;
  const auto& prefix = options.add_template ? tokenizer.spec().template_prefix : no_ids;
  const auto& suffix = options.add_template ? tokenizer.spec().template_suffix : no_ids;
  for (const auto& path : inputs) {
    (in_val ? *val : train).append(prefix);
    TextChunkReader reader(path, options.chunk_bytes,
                           [&](std::string_view text) { return tokenizer.last_safe_split(text); });
    std::string_view chunk;
    while (reader.next(&chunk)) {
      const uint64_t n = split ? count_symbols(chunk) : 0;
      characters += n;
      if (split && !in_val && symbols_seen + n > train_symbols) {
        const size_t cut = symbol_offset(chunk, train_symbols - symbols_seen);
        emit(chunk.substr(0, cut));  // the train side ends here, as at the end of a text
        in_val = true;
        chunk.remove_prefix(cut);
      }
      symbols_seen += n;
      emit(chunk);
    }
    report.bytes += reader.bytes_read();
    (in_val ? *val : train).append(suffix);
    if (eot) (in_val ? *val : train).append(std::span<const uint32_t>(&*eot, 1));
  }
  if (report.bytes == 0)
    throw Error("the corpus is empty: every input file has 0 bytes. Pass files holding text.");
  if (train.count() == 0 || (val && val->count() == 0))
    throw Error("--val-fraction " + std::to_string(options.val_fraction) +
                " leaves the train or validation side without tokens; use more text or another "
                "fraction.");
  report.train_tokens = train.count();
  train.commit();
  if (val) {
    report.val_tokens = val->count();
    val->commit();
  }
  if (split) report.characters = characters;
  return report;
}

}  // namespace magellano::data
