// `magellano serve` as a real process for tests: started with --port 0 on 127.0.0.1, its port
// read from the line it prints once it listens; stopped with SIGTERM (then SIGKILL) when the
// object dies. MAGELLANO_SERVE_TEST_LOG=FILE appends its output to FILE. Plus curl (Debian's) as a second, independent client.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace mgtest {

class ServerProcess {
 public:
  // args after "serve" (e.g. {"--checkpoint", dir}); env assignments as run_cli takes them.
  // Throws std::runtime_error with the process's output when it exits or prints no address
  // within `timeout_s`.
  explicit ServerProcess(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                         int timeout_s = 120);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  bool alive();  // the process has not exited
  // SIGTERM and wait; returns the exit status (-1: killed or abnormal).
  int stop();

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  std::string output_;
};

struct CurlResult {
  int status = 0;    // HTTP status (0: no answer)
  std::string body;
};
// curl -sS with the given extra arguments (each one shell-quoted word) against `url`; the body
// and the HTTP status.
CurlResult curl(const std::string& url, const std::vector<std::string>& args = {});

}  // namespace mgtest
