// magellano quantize --in CHECKPOINT_DIR|FILE.safetensors --out DIR|FILE [--format nf4|int4]
// [--group-size N] [--device D] [--json]: NF4 (bitsandbytes-compatible, double-quantized) or
// int4 (compressed-tensors pack-quantized, as llm-compressor's W4A16) weights, streamed tensor by tensor.
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
      "magellano quantize: 4-bit weights, one tensor at a time, in either of two formats:\n"
      "  nf4   NF4 with double quantization, bit-compatible with bitsandbytes (transformers'\n"
      "        4-bit safetensors keys; the default)\n"
      "  int4  symmetric int4 in groups of --group-size input columns with fp16 scales, in the\n"
      "        compressed-tensors pack-quantized format that llm-compressor writes (W4A16) and\n"
      "        vLLM and transformers read\n"
      "  magellano quantize --in CHECKPOINT_DIR --out NEW_DIR [--format nf4|int4] [--device D]\n"
      "  magellano quantize --in FILE.safetensors --out NEW_FILE.safetensors [--format F] [--device D]\n"
      "Quantizes every 2-D '.weight' tensor except embeddings, norms and lm_head (int4: and those\n"
      "whose input width the group size does not divide); copies the rest. A folder's config.json\n"
      "gains \"quantization_config\"; tokenizer files are copied.\n"
      "--json prints the report as one object.\nOptions");
  std::string in, out, format = "nf4";
  int64_t group_size = 128;
  cli::add_common_options(opts, cli::kDevice | cli::kJson);
  opts.add_options()(
      "in", po::value(&in)->required(), "checkpoint folder (model.safetensors, or sharded: model.safetensors.index.json + shards) or .safetensors file")(
      "out", po::value(&out)->required(), "new folder (for a folder input) or new file")(
      "format", po::value(&format)->default_value(format), "nf4 or int4")(
      "verbose,v", "print one line per tensor");
  cli::add_integer_option(opts, "group-size", &group_size, 1, INT32_MAX,
                          "int4: input columns sharing one scale (vLLM's kernels take 32, 64 or 128)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  io::QuantizeOptions options;
  if (format == "int4") options.format = io::QuantFormat::int4;
  else if (format != "nf4")
    throw po::error("--format must be nf4 or int4, got '" + format + "'");
  if (options.format == io::QuantFormat::nf4 && vm.count("group-size") && !vm["group-size"].defaulted())
    throw po::error("--group-size applies to --format int4 (NF4 always uses blocks of 64)");
  options.group_size = group_size;
  const char* fmt = io::quant_format_name(options.format);
  const bool verbose = vm.count("verbose") > 0;
  if (!fs::exists(in))
    throw Error("quantize: the input " + in + " does not exist. Give a checkpoint folder or a "
                ".safetensors file.");
  if (fs::exists(fs::symlink_status(out)))
    throw Error("quantize: the output " + out + " already exists. Choose a new path or remove it first.");

  auto ctx = Context::create(cli::device_option(vm));
  io::QuantizeProgress progress;
  if (verbose)
    progress = [fmt](const std::string& name, bool q) {
      std::cerr << "  " << (q ? fmt : "copy") << "  " << name << "\n";
    };
  const io::QuantizeReport r = fs::is_directory(in)
                                      ? io::quantize_checkpoint_dir(*ctx, in, out, progress, options)
                                      : io::quantize_safetensors_file(*ctx, in, out, progress, options);
  if (cli::json_option(vm)) {
    nlohmann::json j = {{"in", in}, {"out", out}, {"format", fmt}, {"device", ctx->device().name},
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
    if (options.format == io::QuantFormat::int4) {
      j["group_size"] = options.group_size;
      j["group_misfits"] = r.group_misfits;
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("wrote %s on %s\n", out.c_str(), ctx->device().name.c_str());
  if (options.format == io::QuantFormat::int4)
    std::printf("  tensors          %lld quantized to int4 (groups of %lld), %lld copied\n",
                (long long)r.tensors_quantized, (long long)options.group_size, (long long)r.tensors_copied);
  else
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
  if (!r.group_misfits.empty()) {
    std::printf("  of which          %zu have an input width that %lld does not divide (compressed-tensors needs it to):",
                r.group_misfits.size(), (long long)options.group_size);
    for (const auto& s : r.group_misfits) std::printf(" %s", s.c_str());
    std::printf("\n");
  }
  return 0;
}

cli::RegisterCommand reg{{"quantize", "Quantize a checkpoint's linear weights to NF4 or int4", run_quantize}};

}  // namespace
