// The config loader and --set: the config file's text, then --set assignments, each after a NUL
// byte ("{...}\0train.lr=3e-4\0model.layers=(ME)x2"). Parsed exactly as `train --config F --set
// ...` does (train::parse_config is load_config without reading the file). A config that loads
// converts back to JSON and loads again, without an error, to the same config.
#include <optional>

#include "fuzz_support.hpp"
#include "magellano/train/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split(data, size, 5);
  std::vector<std::string> sets;
  for (size_t i = 1; i < parts.size(); ++i)
    if (!parts[i].empty()) sets.emplace_back(parts[i]);
  std::optional<magellano::train::Config> c;
  fuzz::clear_errors_only([&] { c = magellano::train::parse_config(parts[0], "fuzz.json", sets); });
  if (c && !(magellano::train::Config::from_json(c->to_json()) == *c)) std::abort();
  return 0;
}
