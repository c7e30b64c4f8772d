// Command-line parsing shared by the subcommands (Boost.ProgramOptions): the options every
// command has (--help, and --device and --json where they apply), each with one help text, and
// the one parse every command goes through.
#pragma once
#include <boost/program_options.hpp>
#include <string>

namespace magellano::cli {

// Which of the common options a command takes besides --help (which every command has).
enum CommonOptions : unsigned {
  kHelpOnly = 0,
  kDevice = 1,  // --device D: the OpenCL device; read it with device_option(vm)
  kJson = 2,    // --json: machine-readable output; test it with json_option(vm)
};

// Adds --help (-h) and the common options that `which` names (e.g. kDevice | kJson) to desc.
void add_common_options(boost::program_options::options_description& desc, unsigned which);

// The --device value, or "" (then MAGELLANO_DEVICE, else the first GPU, else the first device).
std::string device_option(const boost::program_options::variables_map& vm);
// Whether --json was given.
bool json_option(const boost::program_options::variables_map& vm);

// Parses argv (argv[0] is the subcommand's name) into vm. With --help it prints the options and
// returns false: the command then exits 0 without doing anything. Unknown or malformed options,
// and arguments that are not options, throw a boost::program_options::error (main prints one
// line and exits 2).
bool parse_options(const boost::program_options::options_description& desc, int argc, char** argv,
                   boost::program_options::variables_map& vm);

}  // namespace magellano::cli
