// Hugging Face tokenizer.json: the input is [tokenizer.json] NUL [text]. A file that parses must
// give a tokenizer that encodes the text (special tokens allowed and as text) and decodes the ids;
// without added tokens, normalizer and prefix space a byte-level BPE decodes to exactly the text. The Split patterns
// of the file exercise the regex matcher (data/regex_split.hpp).
#include "fuzz_support.hpp"
#include "magellano/data/hf_tokenizer_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split(data, size, 2);
  fuzz::clear_errors_only([&] {
    auto hf = magellano::data::parse_hf_tokenizer_json(parts[0], "tokenizer.json");
    const magellano::data::Tokenizer tok(std::move(hf.model), std::move(hf.spec));
    for (auto special : {magellano::data::SpecialTokens::Allowed, magellano::data::SpecialTokens::AsText}) {
      const auto ids = tok.apply_template(tok.encode(parts[1], special));
      const std::string text = tok.decode(ids, true);
      if (tok.spec().added.empty() && tok.spec().normalizer.identity() && !tok.spec().sentencepiece &&
          !tok.spec().splitter.add_prefix_space && tok.spec().template_prefix.empty() &&
          tok.spec().template_suffix.empty() && text != parts[1])
        std::abort();  // byte-level BPE is lossless
    }
  });
  return 0;
}
