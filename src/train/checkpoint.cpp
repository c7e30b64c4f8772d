#include "magellano/train/checkpoint.hpp"

#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/hf_mamba_config.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace fs = std::filesystem;

namespace {
constexpr const char* kFormat = "magellano-checkpoint-1";

// A training config whose model section mirrors a Hugging Face MambaConfig.
Config config_from_hf(const io::HfMambaConfig& hf, const fs::path& dir) {
  if (hf.use_bias)
    throw Error(dir.string() + ": Mamba checkpoints with in_proj/out_proj biases (use_bias) are not "
                "supported.");
  if (!hf.use_conv_bias)
    throw Error(dir.string() + ": Mamba checkpoints without a conv1d bias (use_conv_bias false) are "
                "not supported.");
  nlohmann::json j = Config::defaults().to_json();
  auto& m = j["model"];
  m["vocab_size"] = hf.vocab_size;
  m["dim"] = hf.hidden_size;
  m["layers"] = "(M)x" + std::to_string(hf.num_hidden_layers);
  m["d_state"] = hf.state_size;
  m["d_conv"] = hf.conv_kernel;
  m["expand"] = hf.expand;
  m["dt_rank"] = hf.time_step_rank;
  m["tie_embeddings"] = hf.tie_word_embeddings;
  m["norm_eps"] = hf.layer_norm_epsilon;
  return Config::from_json(j);
}
}  // namespace

nn::ModelSpec model_spec(const ModelConfig& m) {
  nn::ModelSpec s;
  s.vocab_size = m.vocab_size;
  s.dim = m.dim;
  s.layers = layer_string(m.pattern);
  s.mamba = m.mamba_config();
  s.moe = m.moe_config();
  s.tie_embeddings = m.tie_embeddings;
  s.norm_eps = static_cast<float>(m.norm_eps);
  return s;
}

void load_weights(const fs::path& file, const nn::Model& model) {
  const auto reader = io::SafetensorsReader::open(file);
  for (const auto& p : model.parameters()) {
    if (!reader.contains(p.name))
      throw Error(file.string() + " has no tensor '" + p.name + "': it is not a checkpoint of this "
                  "model (check the config's model section).");
    io::load_into(reader, p.name, p.tensor);
  }
}

LoadedModel load_model(const fs::path& dir, Context& ctx) {
  if (!fs::is_directory(dir))
    throw Error("checkpoint '" + dir.string() + "' is not a directory: pass a folder written by "
                "`magellano train` or a Hugging Face Mamba model folder.");
  LoadedModel out;
  if (io::is_hf_mamba_dir(dir)) {
    out.config = config_from_hf(io::read_hf_mamba_config(dir), dir);
    out.hugging_face = true;
  } else {
    out.config = Config::from_json(io::read_json(dir / "config.json", "checkpoint config"));
  }
  out.model = std::make_unique<nn::Model>(ctx, model_spec(out.config.model), out.config.train.seed);
  load_weights(dir / "model.safetensors", *out.model);
  return out;
}

fs::path save_checkpoint(const fs::path& parent, int64_t step, int64_t keep, const Config& config,
                         const nn::Model& model, const optim::AdamW& optimizer,
                         const nlohmann::json& trainer_state) {
  const fs::path path =
      io::write_checkpoint_dir(parent, io::checkpoint_name(step), [&](const fs::path& dir) {
        io::write_json_atomically(dir / "config.json", config.to_json());
        std::vector<std::pair<std::string, io::StTensor>> weights, moments;
        for (const auto& p : model.parameters()) weights.emplace_back(p.name, io::to_st(p.tensor));
        io::write_safetensors(dir / "model.safetensors", weights, {{"format", "pt"}});
        for (const auto& [name, t] : optimizer.state_tensors()) moments.emplace_back(name, io::to_st(t));
        io::write_safetensors(dir / "optimizer.safetensors", moments);
        nlohmann::json state = trainer_state;
        state["format"] = kFormat;
        state["optimizer_steps"] = optimizer.step_count();
        io::write_json_atomically(dir / "trainer_state.json", state);
      });
  io::prune_checkpoints(parent, static_cast<size_t>(std::max<int64_t>(keep, 1)));
  return path;
}

nlohmann::json load_training_state(const fs::path& dir, const nn::Model& model, optim::AdamW& optimizer) {
  nlohmann::json state = io::read_json(dir / "trainer_state.json", "trainer state");
  if (state.value("format", "") != kFormat)
    throw Error(dir.string() + "/trainer_state.json is not a Magellano trainer state (format '" +
                state.value("format", "") + "'); resume needs a checkpoint written by `magellano train`.");
  load_weights(dir / "model.safetensors", model);
  const auto reader = io::SafetensorsReader::open(dir / "optimizer.safetensors");
  std::vector<std::pair<std::string, Tensor>> moments = optimizer.state_tensors();
  for (auto& [name, t] : moments) {
    if (!reader.contains(name))
      throw Error(dir.string() + "/optimizer.safetensors has no '" + name + "'.");
    io::load_into(reader, name, t);
  }
  optimizer.set_step_count(state.at("optimizer_steps").get<int64_t>());
  return state;
}

}  // namespace magellano::train
