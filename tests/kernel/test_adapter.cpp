// LoRA adapters on disk: PEFT's names and adapter_config.json, and export -> import -> export
// giving byte-identical files; a model with other targets refuses the adapter.
#include <fstream>
#include <sstream>

#include "harness.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/nn/model.hpp"
#include "magellano/train/adapter.hpp"
#include "small_model.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
namespace nn = magellano::nn;
namespace fs = std::filesystem;

namespace {

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Adapter, PeftNamesConfigAndByteExactRoundTrip) {
  TempDir dir;
  magellano::train::LoRASection ls;
  ls.rank = 3, ls.alpha = 6, ls.dropout = 0.1, ls.target_modules = {"in_proj", "out_proj", "gate", "experts"};
  nn::ModelSpec s = small_model_spec("ME");
  s.lora.rank = ls.rank, s.lora.alpha = ls.alpha, s.lora.dropout = ls.dropout, s.lora.targets = ls.target_modules;
  nn::Model a(test_ctx(), s, 1);
  randomize_adapters(a, 7);
  magellano::train::save_adapter(dir / "one", a, ls, "base/dir");
  const auto cfg = magellano::io::read_json(dir / "one" / "adapter_config.json", "x");
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["r"], 3);
  EXPECT_EQ(cfg["lora_alpha"], 6.0);
  EXPECT_EQ(cfg["bias"], "none");
  EXPECT_EQ(cfg["fan_in_fan_out"], false);
  EXPECT_EQ(cfg["base_model_name_or_path"], "base/dir");
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"in_proj", "out_proj", "gate", "w1", "w2", "w3"}));
  const auto reader = magellano::io::SafetensorsReader::open(dir / "one" / "adapter_model.safetensors");
  for (const char* n : {"base_model.model.backbone.layers.0.mixer.in_proj.lora_A.weight",
                        "base_model.model.backbone.layers.0.mixer.out_proj.lora_B.weight",
                        "base_model.model.backbone.layers.1.moe.gate.lora_A.weight",
                        "base_model.model.backbone.layers.1.moe.experts.3.w2.lora_B.weight"})
    EXPECT_TRUE(reader.contains(n)) << n;
  EXPECT_EQ(reader.shape("base_model.model.backbone.layers.1.moe.experts.3.w2.lora_B.weight"),
            (std::vector<int64_t>{16, 3}));
  EXPECT_EQ(reader.names().size(), 2u * (2 + 1 + 12));
  // Import into a model with other adapters (another seed), export again: identical bytes.
  const auto back = magellano::train::read_adapter_config(dir / "one");
  EXPECT_EQ(back.target_modules, ls.target_modules);
  nn::Model b(test_ctx(), s, 2);
  magellano::train::load_adapter_weights(dir / "one", b);
  magellano::train::save_adapter(dir / "two", b, back, "base/dir");
  EXPECT_EQ(file_bytes(dir / "one" / "adapter_model.safetensors"), file_bytes(dir / "two" / "adapter_model.safetensors"));
  EXPECT_EQ(file_bytes(dir / "one" / "adapter_config.json"), file_bytes(dir / "two" / "adapter_config.json"));
  // A model with other targets rejects the adapter, naming the tensor.
  nn::ModelSpec other = s;
  other.lora.targets = {"in_proj"};
  nn::Model c(test_ctx(), other, 2);
  EXPECT_THROW(magellano::train::load_adapter_weights(dir / "one", c), magellano::Error);
}
