// magellano eval --checkpoint DIR [--adapter DIR [--base-precision P]] (--tokens FILE | --text FILE)
//                [--seq-len L] [--json]
#include <boost/program_options.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "model_source.hpp"
#include "options.hpp"
#include "magellano/data/token_file.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/device_fit.hpp"
#include "magellano/train/evaluate.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

int run_eval(int argc, char** argv) {
  po::options_description opts(
      "magellano eval: mean loss and perplexity of a checkpoint on held-out data\n"
      "--json prints one object: loss, perplexity, tokens.\nOptions");
  cli::ModelSource source;
  std::string tokens_path, text_path, tokenizer;
  int64_t seq_len = 0, batch = 8;
  cli::add_common_options(opts, cli::kDevice | cli::kJson);
  cli::add_model_source_options(opts, source);
  opts.add_options()
      ("tokens", po::value(&tokens_path), "token file (.tok, or raw uint16 .u16)")
      ("text", po::value(&text_path), "text file, tokenized with --tokenizer")
      ("tokenizer", po::value(&tokenizer), "tokenizer folder for --text: tokenizer.json, or GPT-2's files (default: the config's data.tokenizer)");
  cli::add_integer_option(opts, "seq-len", &seq_len, 2, 1 << 24, "chunk length (default: the config's train.seq_len)",
                          false);
  cli::add_integer_option(opts, "batch", &batch, 1, 1 << 20, "chunks evaluated together");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (source.checkpoint.empty()) throw Error("eval: give --checkpoint DIR.");
  if (tokens_path.empty() == text_path.empty()) throw Error("eval: give exactly one of --tokens FILE or --text FILE.");
  auto ctx = Context::create(cli::device_option(vm));
  auto loaded = cli::load_model_source(source, *ctx);
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
    // As transformers' tokenizer(text): the template (e.g. BOS) around the whole text.
    for (uint32_t id : tok.apply_template(tok.encode(ss.str(), data::SpecialTokens::AsText)))
      ids.push_back(static_cast<int32_t>(id));
  }
  const int64_t L = seq_len > 0 ? seq_len : cfg.train.seq_len;
  // The logits of one batch: at most `batch` chunks of L tokens, and no more than the data holds.
  const int64_t n = static_cast<int64_t>(ids.size()), rows = std::min(batch, (n + L - 1) / L);
  train::require_fit(train::inference_demand(cfg, rows, std::min(L, n), "Use a smaller --batch or --seq-len"),
                     ctx->device(), "eval");
  const auto r = train::evaluate(*loaded.model, ids, L, batch, 0, cfg.train.objective);
  if (!std::isfinite(r.loss))
    throw Error("eval: the loss is " + std::string(std::isnan(r.loss) ? "NaN" : "infinite") + " over " +
                std::to_string(r.tokens) + " tokens although the weights are finite: the checkpoint's weights are "
                "too large to compute with. Use another checkpoint.");
  if (cli::json_option(vm)) {
    std::cout << nlohmann::json{{"loss", r.loss}, {"perplexity", r.perplexity}, {"tokens", r.tokens}}.dump() << "\n";
  } else {
    std::cout << "loss " << r.loss << "  perplexity " << r.perplexity << "  over " << r.tokens
              << (cfg.train.objective.mixed() ? " predicted tokens (objective mix)\n"
                  : cfg.train.objective.objective == data::Objective::prefix_lm ? " predicted suffix tokens (prefix_lm)\n"
                  : cfg.train.objective.objective == data::Objective::blank_infilling
                      ? " predicted span tokens and [END]s (blank_infilling)\n"
                      : " predicted tokens\n");
  }
  return 0;
}

cli::RegisterCommand reg{{"eval", "Loss and perplexity of a checkpoint on held-out data", run_eval}};

}  // namespace
