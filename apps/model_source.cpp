#include "model_source.hpp"

#include "magellano/io/hf_json.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/adapter.hpp"

namespace magellano::cli {
namespace po = boost::program_options;
namespace fs = std::filesystem;

void add_model_source_options(po::options_description& opts, ModelSource& src) {
  opts.add_options()
      ("checkpoint", po::value(&src.checkpoint), "a Magellano checkpoint or a Hugging Face Mamba / Mamba2 model folder")
      ("adapter", po::value(&src.adapter), "a LoRA adapter folder (adapter_config.json + adapter_model.safetensors, "
                                           "PEFT's layout) applied on top of the checkpoint")
      ("base-precision", po::value(&src.base_precision)->default_value("fp32"),
       "with --adapter: store the base weights as fp32, fp16, nf4 or int4 (an int4 file without --adapter stays int4)")
      ("compute-dtype", po::value(&src.compute_dtype),
       "matrix products in fp32, tf32 or bf16 (fp32 accumulation; tf32 and bf16 need a matrix engine, "
       "elsewhere they stay fp32; default: the checkpoint's train.compute_dtype)");
}

train::LoadedModel load_model_source(const ModelSource& src, Context& ctx) {
  nn::WeightStorage base;
  try {
    base = nn::parse_weight_storage(src.base_precision);
  } catch (const Error&) {
    throw Error("--base-precision must be fp32, fp16, nf4 or int4, got '" + src.base_precision + "'.");
  }
  std::optional<ComputeDType> compute;
  if (!src.compute_dtype.empty()) {
    try {
      compute = ops::compute_dtype_from_string(src.compute_dtype);
    } catch (const Error&) {
      throw Error("--compute-dtype must be fp32, tf32 or bf16, got '" + src.compute_dtype + "'.");
    }
  }
  train::LoadedModel loaded = src.adapter.empty() ? train::load_model(src.checkpoint, ctx)
                                                  : train::load_model_with_adapter(src.checkpoint, src.adapter, ctx, base);
  ctx.set_compute_dtype(compute.value_or(loaded.config.train.compute_dtype));
  return loaded;
}

std::optional<data::Tokenizer> find_tokenizer(const std::string& option, const fs::path& checkpoint,
                                              const train::Config& cfg, std::string& why_none) {
  if (!option.empty()) return data::Tokenizer::load(option);
  if (data::has_tokenizer_files(checkpoint)) return data::Tokenizer::load(checkpoint);
  if (cfg.data.tokenizer && fs::is_directory(*cfg.data.tokenizer)) return data::Tokenizer::load(*cfg.data.tokenizer);
  why_none = "the checkpoint folder holds no tokenizer.json, encoder.json + vocab.bpe or vocab.json + merges.txt, and ";
  why_none += cfg.data.tokenizer ? "its config's data.tokenizer '" + *cfg.data.tokenizer + "' is not a folder here"
                                 : "its config names no tokenizer (data.tokenizer)";
  return std::nullopt;
}

std::vector<int32_t> find_eos(const std::optional<data::Tokenizer>& tok, const fs::path& checkpoint,
                              const train::LoadedModel& loaded) {
  if (tok && !tok->eos_ids().empty()) return {tok->eos_ids().begin(), tok->eos_ids().end()};
  if (loaded.hugging_face) {
    const auto j = io::read_hf_json(checkpoint / "config.json", "Hugging Face config");
    const nlohmann::json none;
    const auto& v = j.contains("eos_token_id") ? j["eos_token_id"] : none;
    std::vector<int32_t> ids;
    for (const auto& e : v.is_array() ? v : nlohmann::json::array({v}))
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
    if (!ids.empty()) return ids;
  }
  if (loaded.config.model.vocab_size == 50257) return {50256};
  return {};
}

}  // namespace magellano::cli
