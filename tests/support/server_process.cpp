#include "server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <stdexcept>
#include <thread>

#include "cli.hpp"

namespace mgtest {

namespace {
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

ServerProcess::ServerProcess(const std::vector<std::string>& args, const std::vector<std::string>& env, int timeout_s) {
  const std::string cli = cli_path();
  if (cli.empty()) throw std::runtime_error("the magellano CLI was not found (set MAGELLANO_CLI)");
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv_s = {cli, "serve", "--host", "127.0.0.1", "--port", "0"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    for (const auto& e : env) putenv(const_cast<char*>(strdup(e.c_str())));
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(cli.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  out_fd_ = fds[0];
  const std::regex address(R"(on http://127\.0\.0\.1:(\d+))");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      char buf[4096];
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) break;  // the process closed its output: it exited
      output_.append(buf, static_cast<size_t>(n));
      std::smatch m;
      if (std::regex_search(output_, m, address)) {
        port_ = std::stoi(m[1]);
        // Keep draining the output so the server never blocks on a full pipe.
        // With MAGELLANO_SERVE_TEST_LOG=FILE it goes to that file (for debugging a failure).
        const char* log = std::getenv("MAGELLANO_SERVE_TEST_LOG");
        FILE* f = log && *log ? std::fopen(log, "a") : nullptr;
        if (f) std::fwrite(output_.data(), 1, output_.size(), f);
        std::thread([fd = out_fd_, f] {
          char b[4096];
          ssize_t n;
          while ((n = read(fd, b, sizeof b)) > 0)
            if (f) std::fwrite(b, 1, static_cast<size_t>(n), f), std::fflush(f);
          if (f) std::fclose(f);
        }).detach();
        return;
      }
    }
  }
  stop();
  throw std::runtime_error("magellano serve did not start; its output:\n" + output_);
}

ServerProcess::~ServerProcess() { stop(); }

bool ServerProcess::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  return waitpid(pid_, &status, WNOHANG) == 0;
}

int ServerProcess::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

CurlResult curl(const std::string& url, const std::vector<std::string>& args) {
  std::string cmd = "curl -sS --max-time 60 -w '\\n%{http_code}'";
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " " + shell_quote(url) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run curl");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  CurlResult r;
  const size_t nl = out.rfind('\n');
  if (nl == std::string::npos) return r;
  r.status = std::atoi(out.c_str() + nl + 1);
  r.body = out.substr(0, nl);
  return r;
}

}  // namespace mgtest
