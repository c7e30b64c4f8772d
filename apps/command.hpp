// The CLI's subcommands. Each lives in its own apps/cmd_<name>.cpp and registers itself:
//   static RegisterCommand reg{{"info", "List OpenCL devices", run_info}};
#pragma once
#include <string>
#include <vector>

namespace magellano::cli {

struct Command {
  std::string name;
  std::string summary;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand's name
};

std::vector<Command>& commands();

struct RegisterCommand {
  explicit RegisterCommand(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace magellano::cli
