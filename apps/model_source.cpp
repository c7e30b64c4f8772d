#include "model_source.hpp"

#include "magellano/runtime/error.hpp"
#include "magellano/train/adapter.hpp"

namespace magellano::cli {
namespace po = boost::program_options;

void add_model_source_options(po::options_description& opts, ModelSource& src) {
  opts.add_options()
      ("checkpoint", po::value(&src.checkpoint), "a Magellano checkpoint or a Hugging Face Mamba / Mamba2 model folder")
      ("adapter", po::value(&src.adapter), "a LoRA adapter folder (adapter_config.json + adapter_model.safetensors, "
                                           "PEFT's layout) applied on top of the checkpoint")
      ("base-precision", po::value(&src.base_precision)->default_value("fp32"),
       "with --adapter: store the base weights as fp32, fp16, nf4 or int4 (an int4 file without --adapter stays int4)");
}

train::LoadedModel load_model_source(const ModelSource& src, Context& ctx) {
  nn::WeightStorage base;
  try {
    base = nn::parse_weight_storage(src.base_precision);
  } catch (const Error&) {
    throw Error("--base-precision must be fp32, fp16, nf4 or int4, got '" + src.base_precision + "'.");
  }
  return src.adapter.empty() ? train::load_model(src.checkpoint, ctx)
                             : train::load_model_with_adapter(src.checkpoint, src.adapter, ctx, base);
}

}  // namespace magellano::cli
