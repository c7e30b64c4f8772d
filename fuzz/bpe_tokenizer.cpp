// The GPT-2 / BPE tokenizer files: the input is [vocabulary JSON] NUL [merges] NUL [text]. Its
// first byte picks the file names (encoder.json + vocab.bpe, or vocab.json + merges.txt when it
// is 'v'; that byte then belongs to no file). A tokenizer that loads must encode the text and
// decode the ids back to exactly the text.
#include "fuzz_support.hpp"
#include "magellano/data/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool hf_names = size > 0 && data[0] == 'v';
  const auto parts = hf_names ? fuzz::split(data + 1, size - 1, 3) : fuzz::split(data, size, 3);
  std::error_code ec;
  for (const char* name : {"encoder.json", "vocab.bpe", "vocab.json", "merges.txt"})
    std::filesystem::remove(fuzz::scratch_dir() / name, ec);
  fuzz::write_file(hf_names ? "vocab.json" : "encoder.json", parts[0]);
  fuzz::write_file(hf_names ? "merges.txt" : "vocab.bpe", parts[1]);
  fuzz::clear_errors_only([&] {
    const auto tok = magellano::data::Tokenizer::load(fuzz::scratch_dir());
    const auto ids = tok.encode(parts[2], magellano::data::SpecialTokens::Allowed);
    if (tok.decode(ids) != parts[2]) std::abort();  // byte-level BPE is lossless
  });
  return 0;
}
