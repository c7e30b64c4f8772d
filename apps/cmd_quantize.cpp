// magellano quantize --in CHECKPOINT_DIR|FILE.safetensors --out DIR|FILE [--device D] [--json]:
// NF4 (bitsandbytes-compatible, double-quantized) weights, streamed tensor by tensor.
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "options.hpp"
#include "magellano/io/quantize_file.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/error.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace magellano;

namespace {

int run_quantize(int argc, char** argv) {
  po::options_description opts(
      "magellano quantize: NF4 weights with double quantization, bit-compatible with\n"
      "bitsandbytes (transformers' 4-bit safetensors keys), one tensor at a time\n"
      "  magellano quantize --in CHECKPOINT_DIR --out NEW_DIR [--device D]\n"
      "  magellano quantize --in FILE.safetensors --out NEW_FILE.safetensors [--device D]\n"
      "Quantizes every 2-D '.weight' tensor except embeddings, norms and lm_head; copies the\n"
      "rest. A folder's config.json gains \"quantization_config\"; tokenizer files are copied.\n"
      "--json prints the report as one object.\nOptions");
  std::string in, out;
  cli::add_common_options(opts, cli::kDevice | cli::kJson);
  opts.add_options()(
      "in", po::value(&in)->required(), "checkpoint folder (model.safetensors, or sharded: model.safetensors.index.json + shards) or .safetensors file")(
      "out", po::value(&out)->required(), "new folder (for a folder input) or new file")(
      "verbose,v", "print one line per tensor");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  const bool verbose = vm.count("verbose") > 0;
  if (!fs::exists(in))
    throw Error("quantize: the input " + in + " does not exist. Give a checkpoint folder or a "
                ".safetensors file.");
  if (fs::exists(fs::symlink_status(out)))
    throw Error("quantize: the output " + out + " already exists. Choose a new path or remove it first.");

  auto ctx = Context::create(cli::device_option(vm));
  io::QuantizeProgress progress;
  if (verbose)
    progress = [](const std::string& name, bool q) {
      std::cerr << (q ? "  nf4   " : "  copy  ") << name << "\n";
    };
  const io::QuantizeReport r = fs::is_directory(in)
                                      ? io::quantize_checkpoint_dir(*ctx, in, out, progress)
                                      : io::quantize_safetensors_file(*ctx, in, out, progress);
  if (cli::json_option(vm)) {
    nlohmann::json j = {{"in", in}, {"out", out}, {"device", ctx->device().name},
                        {"seconds", r.seconds}, {"read_seconds", r.read_seconds},
                        {"quantize_seconds", r.quantize_seconds},
                        {"write_seconds", r.write_seconds}, {"bytes_in", r.bytes_in},
                        {"bytes_out", r.bytes_out}, {"tensors_quantized", r.tensors_quantized},
                        {"tensors_copied", r.tensors_copied},
                        {"params_quantized", r.params_quantized},
                        {"bits_per_param", r.bits_per_param()},
                        {"mean_abs_error", r.error.mean_abs()},
                        {"relative_l1_error", r.error.relative_l1()},
                        {"mean_relative_error", r.error.mean_rel()},
                        {"kept_unquantized", r.skipped_linear}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("wrote %s on %s\n", out.c_str(), ctx->device().name.c_str());
  std::printf("  tensors          %lld quantized to NF4, %lld copied\n",
              (long long)r.tensors_quantized, (long long)r.tensors_copied);
  std::printf("  parameters       %.3fM quantized, %.4f bits per parameter\n",
              r.params_quantized / 1e6, r.bits_per_param());
  std::printf("  bytes            %s in, %s out (%.2fx smaller)\n", format_bytes(r.bytes_in).c_str(),
              format_bytes(r.bytes_out).c_str(),
              r.bytes_out ? double(r.bytes_in) / double(r.bytes_out) : 0.0);
  std::printf("  error            mean |w - w'| %.4g, relative (L1) %.4f, mean per-element relative %.4f\n",
              r.error.mean_abs(), r.error.relative_l1(), r.error.mean_rel());
  std::printf("  time             %.2f s (waiting for reads %.2f, quantize %.2f, write %.2f); %.1fM params/s\n",
              r.seconds, r.read_seconds, r.quantize_seconds, r.write_seconds,
              r.seconds > 0 ? r.params_quantized / r.seconds / 1e6 : 0.0);
  if (!r.skipped_linear.empty()) {
    std::printf("  kept unquantized");
    for (const auto& s : r.skipped_linear) std::printf(" %s", s.c_str());
    std::printf("\n");
  }
  return 0;
}

cli::RegisterCommand reg{{"quantize", "Quantize a checkpoint's linear weights to NF4", run_quantize}};

}  // namespace
