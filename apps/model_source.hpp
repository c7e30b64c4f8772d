// The model that `eval` and `generate` run: --checkpoint DIR (a Magellano checkpoint or a
// Hugging Face Mamba / Mamba2 folder), optionally with --adapter DIR (a PEFT LoRA adapter) on a base
// stored as --base-precision fp32|fp16|nf4|int4, its products in --compute-dtype fp32|tf32|bf16
// (default: the checkpoint's train.compute_dtype).
#pragma once
#include <boost/program_options.hpp>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "magellano/data/tokenizer.hpp"
#include "magellano/train/checkpoint.hpp"

namespace magellano::cli {

struct ModelSource {
  std::string checkpoint, adapter, base_precision, compute_dtype;
};

// Adds --checkpoint, --adapter and --base-precision to opts, writing into src.
void add_model_source_options(boost::program_options::options_description& opts, ModelSource& src);

// Loads the model (checks --base-precision and --compute-dtype first, so a typo fails before any
// file is read) and sets ctx's compute dtype.
train::LoadedModel load_model_source(const ModelSource& src, Context& ctx);

// The tokenizer of a model (generate, serve): --tokenizer DIR; else the checkpoint folder's own
// tokenizer files; else the config's data.tokenizer (as `magellano eval --text` uses it); else
// none, and `why_none` says what was tried.
std::optional<data::Tokenizer> find_tokenizer(const std::string& option, const std::filesystem::path& checkpoint,
                                              const train::Config& cfg, std::string& why_none);

// The end-of-text ids: the tokenizer's (GPT-2's files: <|endoftext|>; a tokenizer.json folder: its
// config.json / generation_config.json eos_token_id, data/hf_tokenizer_json.hpp); else the Hugging
// Face checkpoint config's eos_token_id (an id or a list); else 50256 for GPT-2's vocabulary of
// 50,257 ids; else none.
std::vector<int32_t> find_eos(const std::optional<data::Tokenizer>& tok, const std::filesystem::path& checkpoint,
                              const train::LoadedModel& loaded);

}  // namespace magellano::cli
