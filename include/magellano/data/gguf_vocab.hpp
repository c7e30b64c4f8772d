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
//   tokenizer.ggml.bos_token_id   u32: the tokenizer's BOS, else the one id its template puts before a
//                                 text, else its first EOS (GPT-2's <|endoftext|>)
//   tokenizer.ggml.eos_token_id   u32: the first EOS, when there is one
//   tokenizer.ggml.add_bos_token  bool: the template puts the BOS before a text
//   tokenizer.ggml.add_eos_token  false
// A SentencePiece-style tokenizer (sentencepiece_bpe.hpp: Llama 2, Mistral, Jamba) is written as
// llama.cpp's "llama" (SPM) vocabulary, the way convert_hf_to_gguf.py's _set_vocab_sentencepiece
// writes one:
//   tokenizer.ggml.model          "llama"; tokenizer.ggml.pre "default"
//   tokenizer.ggml.tokens         (V) the vocabulary's strings ("▁the", "<0x0A>"); added tokens as their
//                                 content (a user-defined one with "▁" as " ", as the converter does)
//   tokenizer.ggml.scores         (V) f32, gguf_spm_scores below
//   tokenizer.ggml.token_type     (V) int32: 2 the unk token, 3 special added tokens, 6 "<0xXX>",
//                                 4 other added tokens, 5 unused ids, 1 the rest
//   tokenizer.ggml.add_bos_token  bool: the template puts the BOS first; add_eos_token false
//   tokenizer.ggml.add_space_prefix  the normalizer's Prepend("▁") / Metaspace's prepend scheme
//   tokenizer.ggml.bos / eos / unknown / padding_token_id  those the tokenizer knows
// llama.cpp's SPM tokenizer turns each stretch (between special tokens; with add_space_prefix a
// space first when it starts the text or follows a special token, then ' ' -> "▁") into characters
// and repeatedly joins the adjacent pair whose joined text is a token of the highest score (leftmost
// on ties); characters left that are no token become their "<0xXX>" bytes. It reproduces the BPE
// when the scores follow the merge ranks and every pair of tokens that joins into a token is a merge,
// as in every tokenizer.json converted from a SentencePiece model (transformers' converter lists each
// split of each piece as a merge, ranked by the piece's score). Exact for the legacy spelling and
// Metaspace "never"; Metaspace "always" / "first" differ where a stretch starts with a space or
// follows a special token (llama.cpp prepends a space there).
// V is the model's vocabulary (the embedding's rows), which may exceed the tokenizer's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "magellano/data/tokenizer.hpp"
#include "magellano/io/gguf_writer.hpp"

namespace magellano::data {

// GGUF token types (llama.cpp's llama_token_type / gguf-py's TokenType).
enum class GgufTokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// llama.cpp's tokenizer.ggml.pre name for the tokenizer's pre-tokenizer: "gpt-2" (GPT-2's ByteLevel
// regex; also GPT-NeoX's, whose NFC normalizer llama.cpp does not apply), "llama-bpe" (Llama-3's
// Split pattern), "qwen2" (Qwen2's). Throws magellano::Error with one line for anything else
// (llama.cpp would cut the text differently), and for a normalizer other than none or NFC.
std::string gguf_pre_tokenizer_name(const Tokenizer& tok);

// The SPM scores of a SentencePiece-style tokenizer, one per id: a token that merges make gets
// -(1 + the lowest rank of a merge making it), so earlier merges score higher and llama.cpp joins them
// first; single characters and "<0xXX>" bytes 0 (never the join of two symbols); added tokens -1000
// (as the converter); any other token -1e9 (joined last: the BPE never makes it).
std::vector<float> gguf_spm_scores(const Tokenizer& tok);

// Adds the metadata above. Throws magellano::Error when the tokenizer has more ids than vocab_size
// or a template that llama.cpp's add_bos / add_eos cannot express.
void add_gguf_vocab(io::GgufWriter& w, const Tokenizer& tok, int64_t vocab_size);

}  // namespace magellano::data
