// A byte-level BPE tokenizer (tokenizer.hpp) as the metadata of a GGUF file, the way llama.cpp's
// converter (convert_hf_to_gguf.py _set_vocab_gpt2 + gguf-py's SpecialVocab) writes it and
// llama.cpp's "gpt2" (BPE) vocabulary reads it:
//   tokenizer.ggml.model          "gpt2"
//   tokenizer.ggml.pre            llama.cpp's name of the pre-tokenizer (gguf_pre_tokenizer_name)
//   tokenizer.ggml.tokens         (V) strings: a BPE token in GPT-2's byte alphabet ("Ġthe"), an added
//                                 token as its literal text, ids past the tokenizer "[PAD<id>]"
//   tokenizer.ggml.token_type     (V) int32: 1 normal, 3 control (special added tokens), 4 user-defined
//                                 (other added tokens), 5 unused (the padding ids)
//   tokenizer.ggml.merges         (M) strings "<left> <right>" in the byte alphabet, rank order
//   tokenizer.ggml.bos_token_id   u32: the tokenizer's BOS, else its first EOS (GPT-2's <|endoftext|>)
//   tokenizer.ggml.eos_token_id   u32: the first EOS, when there is one
//   tokenizer.ggml.add_bos_token  bool: the template puts the BOS before a text
//   tokenizer.ggml.add_eos_token  false
// V is the model's vocabulary (the embedding's rows), which may exceed the tokenizer's.
#pragma once
#include <cstdint>
#include <string>

#include "magellano/data/tokenizer.hpp"
#include "magellano/io/gguf_writer.hpp"

namespace magellano::data {

// GGUF token types (llama.cpp's llama_token_type / gguf-py's TokenType).
enum class GgufTokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// llama.cpp's tokenizer.ggml.pre name for the tokenizer's pre-tokenizer: "gpt-2" (GPT-2's ByteLevel
// regex; also GPT-NeoX's, whose NFC normalizer llama.cpp does not apply), "llama-bpe" (Llama-3's
// Split pattern), "qwen2" (Qwen2's). Throws magellano::Error with one line for anything else
// (llama.cpp would cut the text differently).
std::string gguf_pre_tokenizer_name(const Tokenizer& tok);

// Adds the metadata above. Throws magellano::Error when the tokenizer has more ids than vocab_size
// or a template that llama.cpp's add_bos / add_eos cannot express.
void add_gguf_vocab(io::GgufWriter& w, const Tokenizer& tok, int64_t vocab_size);

}  // namespace magellano::data
