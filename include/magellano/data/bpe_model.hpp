// A byte-level BPE vocabulary as GPT-2 stores it, and its two files.
//
// Tokenizer directory: either
//   encoder.json + vocab.bpe    (OpenAI GPT-2 names), or
//   vocab.json   + merges.txt   (Hugging Face names; same contents)
// encoder.json: one JSON object {"<token in byte alphabet>": id, ...}, ids exactly 0..V-1.
// vocab.bpe:    "#version: 0.2" then one merge per line, "<left> <right>" in the byte
//               alphabet (byte_alphabet.hpp), rank order (line r is rank r).
// Every byte must be a token, every merge's parts and result must be tokens, and every other
// token must be a special token of the form <|name|> (e.g. <|endoftext|>).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace magellano::data {

struct BpeModel {
  std::vector<std::string> tokens;                    // (V) raw bytes of each id
  std::vector<std::pair<uint32_t, uint32_t>> merges;  // (M) rank r merges (left id, right id)
  std::vector<uint32_t> special_ids;                  // ids outside the BPE (no merge makes them), ascending:
                                                      // GPT-2's files: the <|...|> tokens; tokenizer.json:
                                                      // its added-only ids (hf_tokenizer_json.hpp)
};

// Loads a tokenizer directory (either naming). Throws magellano::Error with one line naming the
// file and what is wrong for a missing, truncated or garbled file.
BpeModel load_bpe_model(const std::filesystem::path& dir);
BpeModel load_bpe_files(const std::filesystem::path& vocab_json,
                        const std::filesystem::path& merges_txt);

// Writes dir/encoder.json and dir/vocab.bpe in GPT-2's exact formats (json.dumps style with
// ", " / ": " separators and \uXXXX escapes; "#version: 0.2" header). Creates dir if needed;
// each file is written atomically.
void save_bpe_model(const BpeModel& model, const std::filesystem::path& dir);

// The two files' texts (what save_bpe_model writes).
std::string encoder_json_text(const BpeModel& model);
std::string merges_text(const BpeModel& model);

}  // namespace magellano::data
