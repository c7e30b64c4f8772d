// magellano export --format gguf --checkpoint DIR --out FILE [--type f32|f16|q8_0] [--tokenizer DIR]
// [--name NAME] [--context-length N] [--device D] [--json]: a GGUF file that llama.cpp runs
// (train/gguf_export.hpp), with the tokenizer in it.
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "model_source.hpp"
#include "options.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/device.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/gguf_export.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace magellano;

namespace {

int run_export(int argc, char** argv) {
  po::options_description opts(
      "magellano export: a checkpoint as a file another runtime loads.\n"
      "  magellano export --format gguf --checkpoint DIR --out FILE.gguf [--type f32|f16|q8_0]\n"
      "GGUF (version 3) for llama.cpp, with the tokenizer in the file, for the architectures llama.cpp\n"
      "runs: pure Mamba (mamba), pure Mamba2 (mamba2), Granite 4.0-H pairs (granitehybrid) and Jamba\n"
      "pairs (jamba); other layer patterns (e.g. Mamba + MoE) are refused. --type sets the matrices'\n"
      "type; norms, biases, A, D, conv1d and routers stay F32 (as llama.cpp's converter writes them).\n"
      "Never overwrites an existing --out.\nOptions");
  std::string format, checkpoint, out, type = "f32", tokenizer, name;
  int64_t context_length = 0;
  cli::add_common_options(opts, cli::kDevice | cli::kJson);
  opts.add_options()
      ("format", po::value(&format)->required(), "the output format: gguf")
      ("checkpoint", po::value(&checkpoint)->required(), "a Magellano checkpoint or Hugging Face model folder")
      ("out", po::value(&out)->required(), "the new file")
      ("type", po::value(&type)->default_value(type), "f32, f16 or q8_0: the type of the weight matrices")
      ("tokenizer", po::value(&tokenizer), "tokenizer folder (default: the checkpoint folder's, else the config's data.tokenizer)")
      ("name", po::value(&name), "general.name (default: the checkpoint folder's name)");
  cli::add_integer_option(opts, "context-length", &context_length, 0, UINT32_MAX,
                          "{arch}.context_length (0 = default: 2^20 for recurrent-only models as llama.cpp's converter "
                          "writes, else train.seq_len)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (format != "gguf") throw po::error("--format must be gguf, got '" + format + "'");
  train::GgufExportOptions options;
  if (type == "f32") options.type = io::GgmlType::f32;
  else if (type == "f16") options.type = io::GgmlType::f16;
  else if (type == "q8_0") options.type = io::GgmlType::q8_0;
  else throw po::error("--type must be f32, f16 or q8_0, got '" + type + "'");
  options.context_length = context_length;
  if (fs::exists(fs::symlink_status(out)))
    throw Error("export: the output " + out + " already exists. Choose a new path or remove it first.");

  // The architecture and the tokenizer are checked before the weights load.
  const train::CheckpointSource source = train::read_checkpoint_config(checkpoint);
  const train::GgufArch arch = train::gguf_arch_for(source.config);
  // A Hugging Face hybrid folder's own context (max_position_embeddings), as the converter writes it
  // for Jamba and for Granite with rotary positions (2^20 for NoPE Granite and pure Mamba / Mamba2).
  const bool positional = arch == train::GgufArch::jamba ||
                          (arch == train::GgufArch::granitehybrid && source.config.model.attention.rope_theta > 0 &&
                           source.config.model.num_attention() > 0);
  if (context_length == 0 && positional && fs::is_regular_file(fs::path(checkpoint) / "config.json")) {
    const auto j = io::read_json(fs::path(checkpoint) / "config.json");
    if (j.is_object() && j.contains("max_position_embeddings") && j["max_position_embeddings"].is_number_unsigned())
      options.context_length = j["max_position_embeddings"].get<int64_t>();
  }
  options.name = name.empty() ? fs::absolute(checkpoint).lexically_normal().filename().string() : name;
  if (options.name.empty()) options.name = fs::absolute(checkpoint).lexically_normal().parent_path().filename().string();
  std::string why_none;
  const auto tok = cli::find_tokenizer(tokenizer, checkpoint, source.config, why_none);
  if (!tok) throw Error("export: a GGUF file carries its tokenizer, and " + why_none + ". Pass --tokenizer DIR.");

  auto ctx = Context::create(cli::device_option(vm));
  train::LoadedModel loaded = train::load_model(checkpoint, *ctx);
  const train::GgufExportReport r = train::export_gguf(*loaded.model, loaded.config, *tok, out, options);
  if (cli::json_option(vm)) {
    nlohmann::json types;
    for (const auto& [t, n] : r.by_type) types[io::ggml_type_name(t)] = n;
    std::cout << nlohmann::json{{"out", out}, {"format", "gguf"}, {"architecture", train::gguf_arch_name(arch)},
                                {"type", type}, {"tensors", r.tensors}, {"tensor_types", types},
                                {"bytes", r.bytes}, {"seconds", r.seconds}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("wrote %s: GGUF v3, architecture %s, %lld tensors (", out.c_str(), train::gguf_arch_name(arch),
              (long long)r.tensors);
  bool first = true;
  for (const auto& [t, n] : r.by_type) {
    std::printf("%s%lld %s", first ? "" : ", ", (long long)n, io::ggml_type_name(t));
    first = false;
  }
  std::printf("), %s in %.2f s\n", format_bytes(r.bytes).c_str(), r.seconds);
  return 0;
}

cli::RegisterCommand reg{{"export", "Export a checkpoint for another runtime (GGUF for llama.cpp)", run_export}};

}  // namespace
