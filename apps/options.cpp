#include "options.hpp"

#include <iostream>

namespace magellano::cli {
namespace po = boost::program_options;

void add_common_options(po::options_description& desc, unsigned which) {
  desc.add_options()("help,h", "show this help");
  if (which & kDevice)
    desc.add_options()("device", po::value<std::string>()->value_name("D"),
                       "OpenCL device: P:D, cpu, gpu or part of a name (default: MAGELLANO_DEVICE, "
                       "else the first GPU; `magellano info` lists them)");
  if (which & kJson) desc.add_options()("json", "print JSON instead of text");
}

std::string device_option(const po::variables_map& vm) {
  return vm.count("device") ? vm["device"].as<std::string>() : std::string();
}

bool json_option(const po::variables_map& vm) { return vm.count("json") > 0; }

bool parse_options(const po::options_description& desc, int argc, char** argv, po::variables_map& vm) {
  const po::parsed_options parsed = po::command_line_parser(argc, argv).options(desc).run();
  // Boost drops words that belong to no option; a stray word is a mistake worth naming.
  for (const auto& o : parsed.options)
    if (o.position_key >= 0 && !o.original_tokens.empty())
      throw po::error("unexpected argument '" + o.original_tokens.front() + "'");
  po::store(parsed, vm);
  if (vm.count("help")) {  // before notify(): --help alone must not trip required options
    std::cout << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace magellano::cli
