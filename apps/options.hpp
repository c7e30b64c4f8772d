// Command-line parsing shared by the subcommands (Boost.ProgramOptions).
#pragma once
#include <boost/program_options.hpp>
#include <iostream>

namespace magellano::cli {

// Parses argv into vm. With --help it prints the options and returns false: the command then
// exits 0 without doing anything. Unknown or malformed options throw (main prints one line).
inline bool parse_options(const boost::program_options::options_description& opts, int argc,
                          char** argv, boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  if (vm.count("help")) {  // before notify(): --help alone must not trip required options
    std::cout << opts << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace magellano::cli
