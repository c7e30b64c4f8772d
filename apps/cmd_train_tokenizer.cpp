// magellano train-tokenizer: learn a byte-level BPE from text, written as GPT-2's two files.
//   magellano train-tokenizer --in FILE... --vocab-size N --out DIR
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "command.hpp"
#include "options.hpp"
#include "magellano/data/bpe_trainer.hpp"
#include "magellano/runtime/error.hpp"

namespace po = boost::program_options;
using namespace magellano;
using namespace magellano::data;

namespace {

int run_train_tokenizer(int argc, char** argv) {
  po::options_description opts(
      "magellano train-tokenizer: learn a byte-level BPE (GPT-2 pre-tokenizer and byte alphabet)\n"
      "  magellano train-tokenizer --in FILE... --vocab-size N --out DIR\n"
      "Writes DIR/encoder.json and DIR/vocab.bpe in GPT-2's formats; <|endoftext|> is the last id.\n"
      "Options");
  std::vector<std::string> inputs;
  size_t vocab_size = 0;
  std::string out;
  cli::add_common_options(opts, cli::kHelpOnly);
  opts.add_options()(
      "in", po::value(&inputs)->multitoken()->required(), "training text file(s)")(
      "out", po::value(&out)->required(), "output folder (created if missing)");
  // At least the 256 bytes and <|endoftext|>; at most what train_bpe takes.
  cli::add_integer_option(opts, "vocab-size", &vocab_size, 257, int64_t{1} << 31,
                          "ids in the result, counting the 256 bytes and <|endoftext|> (e.g. 8192)", false);
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (!vm.count("vocab-size")) throw po::error("the option '--vocab-size' is required but missing");

  const auto start = std::chrono::steady_clock::now();
  WordCounter words;
  words.add_files(std::vector<std::filesystem::path>(inputs.begin(), inputs.end()));
  if (words.bytes() == 0)
    throw Error("the training corpus is empty: every --in file has 0 bytes.");
  BpeTrainReport report;
  const BpeModel model = train_bpe(words, vocab_size, &report);
  save_bpe_model(model, out);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("trained %zu merges on %.2f MB (%zu distinct words) in %.2f s\n", report.merges,
              static_cast<double>(words.bytes()) / 1e6, report.words, seconds);
  std::printf("wrote %s/encoder.json and %s/vocab.bpe: vocabulary %zu (<|endoftext|> = %zu)\n",
              out.c_str(), out.c_str(), model.tokens.size(), model.tokens.size() - 1);
  if (report.stopped_early)
    std::printf("note: the corpus ran out of pairs before %zu ids; use more text for a larger "
                "vocabulary\n", vocab_size);
  return 0;
}

cli::RegisterCommand reg{{"train-tokenizer", "Learn a byte-level BPE tokenizer from text",
                          run_train_tokenizer}};

}  // namespace
