// `magellano eval` as a real process: a checkpoint with a NaN or infinite weight is refused at
// load, naming the tensor and the element; a loss that comes out non-finite from finite
// weights is an error, not `loss nan` with exit 0; logits larger than the device are refused
// before the evaluation allocates them. Each: exit 1 and one line on stderr.
#include <cmath>

#include "cli.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/train/checkpoint.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

namespace {

// A trained checkpoint of the fixture, copied to <dir>/<name> to be damaged.
fs::path trained_copy(const TrainFixture& f, const std::string& name) {
  const fs::path to = f.dir / name;
  fs::copy(f.run / "step-00000004", to, fs::copy_options::recursive);
  return to;
}

CliRun eval(const TrainFixture& f, const fs::path& checkpoint) {
  return run_on_device({"eval", "--checkpoint", checkpoint.string(), "--tokens", (f.dir / "val.tok").string()});
}

}  // namespace

TEST(EvalCli, NonFiniteWeightsAreRefusedNamingTheTensor) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train().exit_code, 0);
  const std::string in_proj = "backbone.layers.0.mixer.in_proj.weight", norm = "backbone.norm_f.weight";
  const fs::path nan = trained_copy(f, "nan"), inf = trained_copy(f, "inf");
  set_weight_values(nan / "model.safetensors", in_proj, NAN, 3);
  set_weight_values(inf / "model.safetensors", norm, -INFINITY, 5);
  auto r = eval(f, nan);
  EXPECT_TRUE(fails_with_one_line(r, 1, "loading '" + in_proj + "' from " + (nan / "model.safetensors").string()));
  EXPECT_TRUE(fails_with_one_line(r, 1, "element 3 of 1024 is NaN"));
  EXPECT_TRUE(fails_with_one_line(eval(f, inf), 1, "loading '" + norm + "' from"));
  EXPECT_TRUE(fails_with_one_line(eval(f, inf), 1, "element 5 of 16 is Inf"));
  EXPECT_EQ(eval(f, f.run / "step-00000004").exit_code, 0);  // the undamaged original
}

TEST(EvalCli, ANonFiniteLossIsAnError) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train().exit_code, 0);
  // Finite weights that overflow in the forward: every one 3e38.
  const fs::path huge = trained_copy(f, "huge");
  set_weight_values(huge / "model.safetensors", "", 3e38f);
  EXPECT_TRUE(fails_with_one_line(eval(f, huge), 1, "eval: the loss is"));
}

TEST(EvalCli, LogitsLargerThanTheDeviceAreRefusedUpFront) {
  MG_REQUIRE_CLI();
  TempDir d;
  // 2^20 tokens in one chunk need (2^20, V) f32 logits: V is chosen to make that twice the
  // device's memory. The model itself is small (V x 16 embedding).
  const int64_t n = int64_t{1} << 20;
  const auto vocab = int64_t(std::ceil(2.0 * double(test_ctx().device().global_mem_bytes) / (4.0 * double(n))));
  const auto cfg = magellano::train::Config::from_json(
      {{"model", {{"vocab_size", vocab}, {"dim", 16}, {"layers", "ME"}, {"d_state", 4},
                  {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 32}}}}}});
  fs::create_directories(d / "big");
  magellano::io::write_json_atomically(d / "big" / "config.json", cfg.to_json());
  {
    const magellano::nn::Model model(test_ctx(), magellano::train::model_spec(cfg.model), 3);
    std::vector<std::pair<std::string, magellano::io::StTensor>> weights;
    for (const auto& p : model.parameters()) weights.emplace_back(p.name, magellano::io::to_st(p.tensor));
    magellano::io::write_safetensors(d / "big" / "model.safetensors", weights);
  }
  magellano::data::write_token_file(d / "data.tok", static_cast<uint64_t>(vocab), std::vector<uint32_t>(n, 7));
  const auto r = run_on_device({"eval", "--checkpoint", (d / "big").string(), "--tokens", (d / "data.tok").string(),
                                "--seq-len", std::to_string(n), "--batch", "1"});
  EXPECT_TRUE(fails_with_one_line(r, 1, "eval: this needs at least"));
  EXPECT_TRUE(fails_with_one_line(r, 1, "Use a smaller --batch or --seq-len"));
}
