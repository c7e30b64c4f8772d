#include "cli.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

namespace {

std::string command_line(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::string cmd;
  for (const auto& e : env) cmd += quote(e) + " ";
  if (!env.empty()) cmd = "env " + cmd;
  cmd += quote(cli_path());
  for (const auto& a : args) cmd += " " + quote(a);
  return cmd;
}

// Runs a shell command; its stdout and exit code.
CliRun run_shell(const std::string& cmd) {
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return {-1, "popen failed", ""};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, ""};
}

}  // namespace

CliRun run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  return run_shell(command_line(args, env) + " 2>&1");
}

CliRun run_cli_split(const std::vector<std::string>& args, const std::vector<std::string>& env,
                     const std::string& stdout_to) {
  namespace fs = std::filesystem;
  static int counter = 0;
  const fs::path err_file =
      fs::temp_directory_path() / ("magellano-cli-stderr-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  CliRun r = run_shell(command_line(args, env) + " 2>" + quote(err_file.string()) +
                       (stdout_to.empty() ? "" : " >" + quote(stdout_to)));
  std::ifstream in(err_file, std::ios::binary);
  r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::error_code ec;
  fs::remove(err_file, ec);
  return r;
}

std::vector<std::string> device_env() {
  const char* d = std::getenv("MAGELLANO_TEST_DEVICE");
  return d && *d ? std::vector<std::string>{std::string("MAGELLANO_DEVICE=") + d} : std::vector<std::string>{};
}

::testing::AssertionResult fails_with_one_line(const CliRun& r, int code, const std::string& needle) {
  const auto fail = [&](const std::string& why) {
    return ::testing::AssertionFailure() << why << "\nexit code " << r.exit_code << "\nstderr: " << r.err
                                         << "\nstdout: " << r.output;
  };
  if (r.exit_code != code) return fail("expected exit code " + std::to_string(code));
  if (r.err.rfind("error: ", 0) != 0) return fail("stderr does not start with 'error: '");
  if (r.err.empty() || r.err.back() != '\n' || r.err.find('\n') != r.err.size() - 1)
    return fail("stderr is not exactly one line");
  if (r.err.find(needle) == std::string::npos) return fail("stderr lacks '" + needle + "'");
  return ::testing::AssertionSuccess();
}

}  // namespace mgtest
