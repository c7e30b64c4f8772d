// magellano info [--json]: every OpenCL device and what it offers.
#include <boost/program_options.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "magellano/runtime/device.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

int run_info(int argc, char** argv) {
  po::options_description opts("magellano info: list OpenCL platforms and devices");
  opts.add_options()("help,h", "show this help")("json", "print one JSON object");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  const auto devices = list_devices();
  std::string chosen;
  try {
    chosen = select_device("", devices).id();
  } catch (const std::exception&) {
  }
  if (vm.count("json")) {
    nlohmann::json j;
    j["devices"] = nlohmann::json::array();
    for (const auto& d : devices) j["devices"].push_back(to_json(d));
    j["default_device"] = chosen.empty() ? nlohmann::json(nullptr) : nlohmann::json(chosen);
    std::cout << j.dump(2) << "\n";
    return devices.empty() ? 1 : 0;
  }
  if (devices.empty()) {
    std::cerr << "error: no OpenCL device found. Install a driver (scripts/setup.sh installs "
                 "PoCL for the CPU) and check `clinfo -l`.\n";
    return 1;
  }
  for (const auto& d : devices) {
    std::cout << "[" << d.id() << "] " << d.name << (d.id() == chosen ? "   (default)" : "")
              << "\n"
              << "    platform        " << d.platform_name << " (" << d.platform_version << ")\n"
              << "    type            " << d.type << "\n"
              << "    driver          " << d.driver_version << "\n"
              << "    OpenCL          " << d.opencl_version << ", " << d.opencl_c_version << "\n"
              << "    compute units   " << d.compute_units << "\n"
              << "    global memory   " << format_bytes(d.global_mem_bytes) << "\n"
              << "    max allocation  " << format_bytes(d.max_alloc_bytes) << "\n"
              << "    local memory    " << format_bytes(d.local_mem_bytes) << "\n"
              << "    fp16 / fp64     " << (d.fp16 ? "yes" : "no") << " / "
              << (d.fp64 ? "yes" : "no") << "\n";
  }
  return 0;
}

cli::RegisterCommand reg{{"info", "List OpenCL devices and their limits", run_info}};

}  // namespace
