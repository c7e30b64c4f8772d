// magellano: train and run hybrid Mamba / MoE language models on any OpenCL device.
#include <algorithm>
#include <boost/program_options/errors.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
}  // namespace magellano::cli

namespace {
void usage(std::ostream& os) {
  using magellano::cli::commands;
  auto cmds = commands();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  os << "usage: magellano <command> [options]   (magellano <command> --help for its options)\n\n"
        "commands:\n";
  for (const auto& c : cmds) {
    os << "  " << c.name << std::string(c.name.size() < 16 ? 16 - c.name.size() : 1, ' ')
       << c.summary << "\n";
  }
  os << "\nThe device comes from --device (P:D, cpu, gpu or part of a name) or MAGELLANO_DEVICE.\n";
}
// The exit status once the output is flushed: a write to stdout that failed (a full disk,
// `> /dev/full`, a closed pipe) is an error, not exit 0 with the output lost.
int flushed(int status) {
  errno = 0;  // what these last writes set, if anything (an earlier failure's errno is gone)
  std::cout.flush();
  const bool ok = !std::cout.fail() && std::fflush(stdout) == 0 && !std::ferror(stdout);
  if (ok || status != 0) return status;  // a failed command has said what went wrong
  const int err = errno;
  std::cerr << "error: could not write all of the output to stdout"
            << (err ? std::string(" (") + std::strerror(err) + ")" : std::string())
            << ". Check where it goes: a full disk, or a closed pipe.\n";
  return 1;
}

int run(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "magellano " MAGELLANO_VERSION "\n";  // from CMake's project(VERSION)
    return 0;
  }
  for (const auto& c : magellano::cli::commands()) {
    if (c.name != argv[1]) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const boost::program_options::error& e) {
      std::cerr << "error: " << e.what() << " (see magellano " << c.name << " --help)\n";
      return 2;
    } catch (const std::bad_alloc&) {
      std::cerr << "error: out of host memory. Use a smaller batch, sequence length or model, "
                   "or free memory on this machine.\n";
      return 1;
    } catch (const nlohmann::json::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "error: unknown command '" << argv[1] << "'.\n\n";
  usage(std::cerr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) { return flushed(run(argc, argv)); }
