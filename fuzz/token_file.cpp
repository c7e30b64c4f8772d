// Token files: the first input byte picks the file name (odd: a raw .u16 file, even: a Magellano
// .tok file) and the model's vocabulary (0 = the file's own, else 2 + 512k for k = 1 .. 127); the
// rest is the file. Every id is read back: below the vocabulary that open() checked, and the same
// through read_all().
#include "fuzz_support.hpp"
#include "magellano/data/token_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool u16 = data[0] & 1;
  const uint64_t vocab = (data[0] >> 1) == 0 ? 0 : 2 + (uint64_t(data[0] >> 1) << 9);
  const auto path = fuzz::write_file(u16 ? "tokens.u16" : "tokens.tok",
                                     {reinterpret_cast<const char*>(data) + 1, size - 1});
  fuzz::clear_errors_only([&] {
    const auto f = magellano::data::TokenFile::open(path, vocab);
    const uint64_t bound = vocab ? vocab : f.vocab_size();
    const std::vector<int32_t> ids = f.read_all();
    if (ids.size() != f.size()) std::abort();
    for (uint64_t i = 0; i < f.size(); ++i)
      if ((bound && f[i] >= bound) || uint32_t(ids[i]) != f[i]) std::abort();
  });
  return 0;
}
