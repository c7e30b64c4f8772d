#include "train_fixture.hpp"

#include <random>

#include "magellano/data/token_file.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"

namespace mgtest {
namespace fs = std::filesystem;

namespace {

// A repeating sequence with noise, so the loss falls.
void write_tokens(const fs::path& p, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = rng() % 10 == 0 ? rng() % 64 : (i * 7) % 64;
  magellano::data::write_token_file(p, 64, ids);
}

}  // namespace

TrainFixture::TrainFixture(const fs::path& d) : dir(d), config(d / "config.json"), run(d / "run") {
  write_tokens(dir / "train.tok", 4000, 1);
  write_tokens(dir / "val.tok", 400, 2);
  magellano::io::write_json_atomically(
      config,
      {{"model", {{"vocab_size", 64}, {"dim", 16}, {"layers", "ME"}, {"d_state", 4},
                  {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 32}}}}},
       {"data", {{"train", (dir / "train.tok").string()}, {"val", (dir / "val.tok").string()}}},
       {"train", {{"steps", 4}, {"batch_size", 2}, {"seq_len", 16}, {"lr", 3e-3}, {"min_lr", 3e-4},
                  {"warmup_steps", 1}, {"log_every", 1}, {"seed", 7}}},
       {"eval", {{"every", 0}, {"batches", 2}}},
       {"checkpoint", {{"dir", run.string()}, {"every", 2}, {"keep", 3}}}});
}

CliRun TrainFixture::train(const std::vector<std::string>& args) const {
  std::vector<std::string> all = {"train", "--config", config.string()};
  all.insert(all.end(), args.begin(), args.end());
  return run_on_device(all);
}

void set_weight_values(const fs::path& file, const std::string& name, float value, size_t index) {
  const auto reader = magellano::io::SafetensorsReader::open(file);
  std::vector<std::pair<std::string, magellano::io::StTensor>> tensors;
  for (const auto& n : reader.names()) {
    magellano::io::StTensor t = reader.read(n);
    if (t.dtype == magellano::io::StDType::F32 && (name.empty() || n == name)) {
      auto* v = reinterpret_cast<float*>(t.bytes.data());
      for (size_t i = 0; i < t.bytes.size() / 4; ++i)
        if (name.empty() || i == index) v[i] = value;
    }
    tensors.emplace_back(n, std::move(t));
  }
  magellano::io::write_safetensors(file, tensors, reader.metadata());
}

CliRun run_on_device(const std::vector<std::string>& args) { return run_cli_split(args, device_env()); }

}  // namespace mgtest
