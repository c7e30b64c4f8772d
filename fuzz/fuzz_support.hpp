// What every fuzz target shares: a scratch folder for inputs that must be files, splitting one
// input into several files, and the rule that magellano::Error (the one-clear-line path) is a
// correct answer while anything else (another exception, a crash, a sanitizer report) is a finding.
#pragma once
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "magellano/runtime/error.hpp"

namespace fuzz {

// A folder of this process's own: <base>/magellano-fuzz-<pid>, where base is $TMPDIR when set,
// else /dev/shm (memory: a file written per input costs microseconds there, milliseconds on a
// disk), else /tmp. libFuzzer ends the process without running exit handlers, so instead of
// cleaning up at exit each process first removes the folders of processes that are gone.
inline const std::filesystem::path& scratch_dir() {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::error_code ec;
    const fs::path base = tmp && *tmp ? tmp : fs::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    const std::string prefix = "magellano-fuzz-";
    for (const auto& e : fs::directory_iterator(base, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
    const fs::path mine = base / (prefix + std::to_string(::getpid()));
    fs::remove_all(mine, ec);
    if (!fs::create_directories(mine, ec)) std::abort();
    return mine;
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
