// The safetensors reader: the input is a whole .safetensors file (header length, JSON header,
// data). Every tensor the header lists is read, and converted to f32 where it can be.
#include "fuzz_support.hpp"
#include "magellano/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::write_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::clear_errors_only([&] {
    const auto reader = magellano::io::SafetensorsReader::open(path);
    for (const std::string& name : reader.names()) {
      const auto t = reader.read(name);
      if (t.bytes.size() != uint64_t(magellano::io::st_numel(t.shape)) * magellano::io::st_dtype_size(t.dtype))
        std::abort();  // the header check promised this
      fuzz::clear_errors_only([&] { reader.read_f32(name); });
    }
  });
  return 0;
}
