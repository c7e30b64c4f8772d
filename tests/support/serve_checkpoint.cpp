#include "serve_checkpoint.hpp"

#include "harness.hpp"
#include "magellano/data/bpe_trainer.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/train/checkpoint.hpp"

namespace mgtest {

const char* const kServeText =
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on and on.\n"
    "A model reads the text, then writes more text, one token after another token.\n";

void write_serve_checkpoint(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto cfg = magellano::train::Config::from_json(
      {{"model", {{"vocab_size", 300}, {"dim", 16}, {"layers", "MAE"}, {"d_state", 8},
                  {"attention", {{"heads", 2}, {"kv_heads", 1}}},
                  {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 32}}}}}});
  magellano::io::write_json_atomically(dir / "config.json", cfg.to_json());
  magellano::nn::Model model(test_ctx(), magellano::train::model_spec(cfg.model), 5);
  std::vector<std::pair<std::string, magellano::io::StTensor>> weights;
  for (const auto& p : model.parameters()) weights.emplace_back(p.name, magellano::io::to_st(p.tensor));
  magellano::io::write_safetensors(dir / "model.safetensors", weights, {{"format", "pt"}});
  magellano::data::WordCounter words;
  words.add_text(kServeText);
  magellano::data::save_bpe_model(magellano::data::train_bpe(words, 300), dir);
}

}  // namespace mgtest
