// magellano eval --checkpoint DIR [--adapter DIR [--base-precision P]] (--tokens FILE | --text FILE)
//                [--seq-len L] [--json]
#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "options.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/adapter.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/evaluate.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

int run_eval(int argc, char** argv) {
  po::options_description opts("magellano eval: mean loss and perplexity of a checkpoint on held-out data");
  std::string checkpoint, tokens_path, text_path, tokenizer, device, adapter, base_precision;
  int64_t seq_len = 0, batch = 8;
  opts.add_options()("help,h", "show this help")
      ("checkpoint", po::value(&checkpoint), "a Magellano checkpoint or a Hugging Face Mamba model folder")
      ("adapter", po::value(&adapter), "a LoRA adapter folder (adapter_config.json + adapter_model.safetensors, "
                                       "PEFT's layout) applied on top of the checkpoint")
      ("base-precision", po::value(&base_precision)->default_value("fp32"),
       "with --adapter: store the base weights as fp32, fp16 or nf4")
      ("tokens", po::value(&tokens_path), "token file (.tok, or raw uint16 .u16)")
      ("text", po::value(&text_path), "text file, tokenized with --tokenizer")
      ("tokenizer", po::value(&tokenizer), "tokenizer folder for --text (default: the config's data.tokenizer)")
      ("seq-len", po::value(&seq_len), "chunk length (default: the config's train.seq_len)")
      ("batch", po::value(&batch)->default_value(8), "chunks evaluated together")
      ("device", po::value(&device), "OpenCL device: P:D, cpu, gpu or part of a name")
      ("json", "print one JSON object: loss, perplexity, tokens");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (checkpoint.empty()) throw Error("eval: give --checkpoint DIR.");
  if (tokens_path.empty() == text_path.empty()) throw Error("eval: give exactly one of --tokens FILE or --text FILE.");
  auto ctx = Context::create(device);
  if (base_precision != "fp32" && base_precision != "fp16" && base_precision != "nf4")
    throw Error("eval: --base-precision must be fp32, fp16 or nf4, got '" + base_precision + "'.");
  auto loaded = adapter.empty() ? train::load_model(checkpoint, *ctx)
                                : train::load_model_with_adapter(checkpoint, adapter, *ctx, base_precision);
  const auto& cfg = loaded.config;
  std::vector<int32_t> ids;
  if (!tokens_path.empty()) {
    ids = data::TokenFile::open(tokens_path, static_cast<uint64_t>(cfg.model.vocab_size)).read_all();
  } else {
    if (tokenizer.empty() && cfg.data.tokenizer) tokenizer = *cfg.data.tokenizer;
    if (tokenizer.empty()) throw Error("eval: --text needs --tokenizer DIR (the checkpoint names none).");
    const auto tok = data::Tokenizer::load(tokenizer);
    if (static_cast<int64_t>(tok.vocab_size()) > cfg.model.vocab_size)
      throw Error("eval: the tokenizer has " + std::to_string(tok.vocab_size()) + " ids but the model only " +
                  std::to_string(cfg.model.vocab_size) + ": it is not this model's tokenizer.");
    std::ifstream in(text_path, std::ios::binary);
    if (!in) throw Error("eval: cannot read " + text_path + ".");
    std::stringstream ss;
    ss << in.rdbuf();
    for (uint32_t id : tok.encode(ss.str(), data::SpecialTokens::AsText)) ids.push_back(static_cast<int32_t>(id));
  }
  const auto r = train::evaluate(*loaded.model, ids, seq_len > 0 ? seq_len : cfg.train.seq_len, batch);
  if (vm.count("json")) {
    std::cout << nlohmann::json{{"loss", r.loss}, {"perplexity", r.perplexity}, {"tokens", r.tokens}}.dump() << "\n";
  } else {
    std::cout << "loss " << r.loss << "  perplexity " << r.perplexity << "  over " << r.tokens
              << " predicted tokens\n";
  }
  return 0;
}

cli::RegisterCommand reg{{"eval", "Loss and perplexity of a checkpoint on held-out data", run_eval}};

}  // namespace
