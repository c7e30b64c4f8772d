// magellano merge-adapter --checkpoint BASE --adapter DIR --out DIR [--device D] [--json]
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "command.hpp"
#include "options.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/merge.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

int run_merge(int argc, char** argv) {
  po::options_description opts(
      "magellano merge-adapter: add a LoRA adapter into its base model's weights, W' = W + (alpha/r) B A\n"
      "  magellano merge-adapter --checkpoint BASE --adapter DIR --out DIR\n"
      "--device runs the products; --json prints the report as one object.\nOptions");
  std::string checkpoint, adapter, out;
  cli::add_common_options(opts, cli::kDevice | cli::kJson);
  opts.add_options()
      ("checkpoint", po::value(&checkpoint), "the base model: a Magellano or Hugging Face Mamba / Mamba2 checkpoint folder")
      ("adapter", po::value(&adapter), "the adapter folder (adapter_config.json + adapter_model.safetensors)")
      ("out", po::value(&out), "folder to write the merged checkpoint to (config.json + model.safetensors)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (checkpoint.empty() || adapter.empty() || out.empty())
    throw Error("merge-adapter: give --checkpoint BASE, --adapter DIR and --out DIR.");
  auto ctx = Context::create(cli::device_option(vm));
  const auto r = train::merge_adapter(checkpoint, adapter, out, *ctx);
  if (cli::json_option(vm)) {
    std::cout << r.to_json().dump() << "\n";
    return 0;
  }
  std::printf("merged %lld weights (%lld tensors copied) into %s in %.2f s; |delta| mean %.3g, max %.3g\n",
              (long long)r.merged, (long long)r.copied, out.c_str(), r.seconds, r.mean_abs_delta, r.max_abs_delta);
  if (r.requantized)
    std::printf("re-quantized (NF4 / int4): mean |error| %.4g, max %.4g\n", r.requant_mean_abs_error, r.requant_max_abs_error);
  return 0;
}

cli::RegisterCommand reg{{"merge-adapter", "Merge a LoRA adapter into its base checkpoint", run_merge}};

}  // namespace
