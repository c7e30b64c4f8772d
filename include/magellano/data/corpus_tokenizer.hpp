// Tokenizing text files into train / validation token files, streaming: memory stays bounded by
// the chunk size (plus the longest stretch without a safe cut), whatever the corpus size.
//
// The inputs are read in order; each file is tokenized on its own (no piece spans two files);
// with add_template each file's ids are wrapped in the tokenizer's template (Tokenizer::
// apply_template: e.g. Llama-3's BOS first; nothing for GPT-2); with eot_between_files, the
// tokenizer's end-of-text id (GPT-2: <|endoftext|>) follows each file. With val_fraction F > 0 the text is
// split by characters like nanoGPT's prepare.py: the first floor(C * (1 - F)) of the C
// characters (code points) of all inputs go to train, the rest to validation, and each side is
// tokenized as its own text.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "magellano/data/tokenizer.hpp"

namespace magellano::data {

struct CorpusTokenizeOptions {
  double val_fraction = 0.0;                    // in [0, 1)
  SpecialTokens special = SpecialTokens::AsText;
  bool eot_between_files = false;
  bool add_template = false;
  unsigned threads = 0;                         // 0 = all hardware threads
  size_t chunk_bytes = 16 << 20;
};

struct CorpusTokenizeReport {
  std::filesystem::path train_path, val_path;   // val_path empty when val_fraction == 0
  uint64_t train_tokens = 0, val_tokens = 0;
  uint64_t bytes = 0, characters = 0;
};

// Writes <out_prefix>.train.tok and (if val_fraction > 0) <out_prefix>.val.tok, atomically
// (io::AtomicFile), first removing the temporaries of those two files that a killed earlier run
// left ("<out_prefix>.train.tok.tmp-<pid>", io::remove_stale_temporaries).
// Throws magellano::Error for a missing input, an empty corpus or a split leaving a side empty.
CorpusTokenizeReport tokenize_corpus(const Tokenizer& tokenizer,
                                     const std::vector<std::filesystem::path>& inputs,
                                     const std::filesystem::path& out_prefix,
                                     const CorpusTokenizeOptions& options);

}  // namespace magellano::data
