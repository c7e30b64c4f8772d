// The layer-pattern parser ("(MMME)x9MMM"): a pattern that parses gives 1 .. 100000 layers, and
// its expansion written out ("MMMEMMME...") parses, without an error, to the same layers.
#include "fuzz_support.hpp"
#include "magellano/train/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string pattern(reinterpret_cast<const char*>(data), size);
  std::vector<magellano::train::LayerKind> layers;
  fuzz::clear_errors_only([&] { layers = magellano::train::parse_layer_pattern(pattern); });
  if (layers.empty()) return 0;  // refused with an Error
  if (layers.size() > 100000) std::abort();
  if (magellano::train::parse_layer_pattern(magellano::train::layer_string(layers)) != layers) std::abort();
  return 0;
}
