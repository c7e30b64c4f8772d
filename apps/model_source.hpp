// The model that `eval` and `generate` run: --checkpoint DIR (a Magellano checkpoint or a
// Hugging Face Mamba / Mamba2 folder), optionally with --adapter DIR (a PEFT LoRA adapter) on a base
// stored as --base-precision fp32|fp16|nf4|int4.
#pragma once
#include <boost/program_options.hpp>
#include <string>

#include "magellano/train/checkpoint.hpp"

namespace magellano::cli {

struct ModelSource {
  std::string checkpoint, adapter, base_precision;
};

// Adds --checkpoint, --adapter and --base-precision to opts, writing into src.
void add_model_source_options(boost::program_options::options_description& opts, ModelSource& src);

// Loads the model (checks --base-precision first, so a typo fails before any file is read).
train::LoadedModel load_model_source(const ModelSource& src, Context& ctx);

}  // namespace magellano::cli
