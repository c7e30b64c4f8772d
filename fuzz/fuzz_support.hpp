// What every fuzz target shares: a scratch folder for inputs that must be files, splitting one
// input into several files, and the rule that magellano::Error (the one-clear-line path) is a
// correct answer while anything else (another exception, a crash, a sanitizer report) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "magellano/runtime/error.hpp"

namespace fuzz {

// A folder of this process's own, removed at exit: under $TMPDIR when set, else /dev/shm (memory:
// a file written per input costs microseconds there, milliseconds on a disk), else /tmp.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::error_code ec;
    const std::string base = tmp && *tmp ? tmp : std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string pattern = base + "/magellano-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(pattern);
  }();
  return dir;
}

// Writes bytes to scratch_dir()/name and returns the path.
inline std::filesystem::path write_file(const std::string& name, std::string_view bytes) {
  const auto path = scratch_dir() / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

// The input cut at each NUL byte into at most `parts` pieces (the last keeps any further NULs);
// missing pieces are empty. Seeds write their files separated by one NUL.
inline std::vector<std::string_view> split(const uint8_t* data, size_t size, size_t parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    out.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  out.push_back(rest);
  out.resize(parts);
  return out;
}

// Runs f; a magellano::Error is the expected answer to bad input, anything else escapes.
template <class F>
void clear_errors_only(F&& f) {
  try {
    f();
  } catch (const magellano::Error&) {
  }
}

}  // namespace fuzz
