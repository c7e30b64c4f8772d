#include "cli.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace mgtest {
namespace {
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::string cli_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("MAGELLANO_CLI"); env && *env) return fs::exists(env) ? env : "";
  // Beside the test binary or one folder up (build/tests/../magellano), then the build's.
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path bin = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (!ec) candidates = {bin / "magellano", bin.parent_path() / "magellano"};
#ifdef MAGELLANO_TEST_CLI_DEFAULT
  candidates.emplace_back(MAGELLANO_TEST_CLI_DEFAULT);
#endif
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return c.string();
  return {};
}

CliRun run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::string cmd;
  for (const auto& e : env) cmd += quote(e) + " ";
  if (!env.empty()) cmd = "env " + cmd;
  cmd += quote(cli_path());
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace mgtest
