#include "hf_mamba2_folder.hpp"

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "magellano/io/safetensors.hpp"

namespace mgtest {
namespace {

magellano::io::StTensor f32_tensor(const std::vector<int64_t>& shape, const ref::Vec& values) {
  magellano::io::StTensor t{magellano::io::StDType::F32, shape, std::vector<uint8_t>(values.size() * 4)};
  for (size_t i = 0; i < values.size(); ++i) {
    const float f = static_cast<float>(values[i]);
    std::memcpy(t.bytes.data() + 4 * i, &f, 4);
  }
  return t;
}

}  // namespace

std::string hf_mamba2_config_text(const ref::Mamba2Model& m, const std::string& time_step_limit) {
  const ref::Mamba2Dims& s = m.dims;
  nlohmann::json j = {{"architectures", {"Mamba2ForCausalLM"}},
                      {"model_type", "mamba2"},
                      {"vocab_size", m.vocab},
                      {"hidden_size", s.d},
                      {"state_size", s.n},
                      {"num_hidden_layers", m.blocks.size()},
                      {"expand", s.di / s.d},
                      {"conv_kernel", s.k},
                      {"n_groups", s.g},
                      {"head_dim", s.p},
                      {"num_heads", s.h()},
                      {"chunk_size", 256},
                      {"use_bias", s.bias},
                      {"use_conv_bias", s.conv_bias},
                      {"layer_norm_epsilon", s.eps},
                      {"hidden_act", "silu"},
                      {"rms_norm", true},
                      {"residual_in_fp32", true},
                      {"time_step_rank", 1},
                      {"time_step_min", 0.001},
                      {"time_step_max", 0.1},
                      {"time_step_floor", 1e-4},
                      {"tie_word_embeddings", m.tie},
                      {"bos_token_id", 0},
                      {"eos_token_id", 2},
                      {"pad_token_id", 1},
                      {"torch_dtype", "float32"}};
  if (time_step_limit.empty()) return j.dump(2);
  j["time_step_limit"] = "@LIMIT@";
  std::string text = j.dump(2);
  text.replace(text.find("\"@LIMIT@\""), 9, time_step_limit);
  return text;
}

void write_hf_mamba2_folder(const ref::Mamba2Model& m, const std::filesystem::path& dir,
                            const std::string& config_text) {
  ref::Mamba2Model copy = m;  // fields() hands out pointers into the weights
  const int64_t V = m.vocab, D = m.dims.d;
  std::vector<std::pair<std::string, magellano::io::StTensor>> t;
  t.emplace_back("backbone.embeddings.weight", f32_tensor({V, D}, m.embedding));
  for (size_t i = 0; i < copy.blocks.size(); ++i)
    for (const auto& f : copy.blocks[i].fields(m.dims))
      t.emplace_back("backbone.layers." + std::to_string(i) + "." + f.name, f32_tensor(f.shape, *f.values));
  t.emplace_back("backbone.norm_f.weight", f32_tensor({D}, m.norm_f));
  if (!m.tie) t.emplace_back("lm_head.weight", f32_tensor({V, D}, m.lm_head));
  magellano::io::write_safetensors(dir / "model.safetensors", t, {{"format", "pt"}});
  std::ofstream(dir / "config.json") << config_text;
}

}  // namespace mgtest
