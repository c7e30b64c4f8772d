// magellano tokenize: text files -> token files (train / validation), or ids on stdout.
//   magellano tokenize --tokenizer DIR --in FILE... --out PREFIX [--val-fraction F]
//   magellano tokenize --tokenizer DIR --in FILE --ids
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "options.hpp"
#include "magellano/data/corpus_tokenizer.hpp"
#include "magellano/data/text_chunks.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"

namespace po = boost::program_options;
using namespace magellano;
using namespace magellano::data;

namespace {

int run_tokenize(int argc, char** argv) {
  po::options_description opts(
      "magellano tokenize: text files -> token files\n"
      "  magellano tokenize --tokenizer DIR --in FILE... --out PREFIX [--val-fraction F]\n"
      "  magellano tokenize --tokenizer DIR --in FILE --ids\n"
      "  magellano tokenize --tokenizer DIR --in IDS_FILE --decode\n"
      "Writes PREFIX.train.tok (and PREFIX.val.tok with --val-fraction): header 'MGTOKENS',\n"
      "version, id width (2 or 4 bytes by vocabulary size), vocabulary size, count, then ids.\n"
      "A tokenizer.json folder's template (e.g. Llama-3's BOS) wraps each input file, as transformers'\n"
      "add_special_tokens=True does, unless --no-template.\n"
      "Options");
  std::string tokenizer_dir, out;
  std::vector<std::string> inputs;
  double val_fraction = 0.0;
  unsigned threads = 0;
  cli::add_common_options(opts, cli::kHelpOnly);
  opts.add_options()(
      "tokenizer", po::value(&tokenizer_dir)->required(),
      "folder with tokenizer.json (Hugging Face BPE: byte-level or SentencePiece-style), or encoder.json + "
      "vocab.bpe, or vocab.json + merges.txt; tokenizer.json wins when there are both")(
      "in", po::value(&inputs)->multitoken()->required(), "input text file(s)")(
      "out", po::value(&out), "output prefix: writes PREFIX.train.tok [PREFIX.val.tok]")(
      "ids", "print the ids of the input on one line instead of writing files")(
      "decode", "print the text of the ids (separated by white space) in the input, as tokenizers' decode")(
      "allow-special", "turn literal special tokens such as <|endoftext|> into their ids "
                       "(default: encode them as plain text)")(
      "skip-special", "with --decode: leave out special tokens (skip_special_tokens=True)")(
      "no-template", "do not add the tokenizer's template tokens (tokenizer.json's post-processor, e.g. BOS)")(
      "eot-between-files", "append the end-of-text token (<|endoftext|>, or the model's EOS) after each input file");
  cli::add_number_option(opts, "val-fraction", &val_fraction, {0, 1, false, true},
                         "last fraction of the characters that goes to PREFIX.val.tok, e.g. 0.1");
  cli::add_integer_option(opts, "threads", &threads, 0, 1024, "encoding threads (0 = all cores)");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  const SpecialTokens special =
      vm.count("allow-special") ? SpecialTokens::Allowed : SpecialTokens::AsText;
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);

  if (vm.count("decode")) {
    if (inputs.size() != 1) throw Error("--decode takes exactly one --in file.");
    std::istringstream in(read_whole_file(inputs[0], "id file"));
    std::vector<uint32_t> ids;
    for (std::string word; in >> word;) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(word.c_str(), &end, 10);
      if (*end != '\0' || word[0] == '-' || v >= (1ull << 31))
        throw Error(inputs[0] + ": \"" + word.substr(0, 20) + "\" is not a token id.");
      ids.push_back(static_cast<uint32_t>(v));
    }
    std::cout << tokenizer.decode(ids, vm.count("skip-special") > 0);
    return 0;
  }
  if (vm.count("ids")) {
    if (inputs.size() != 1) throw Error("--ids takes exactly one --in file.");
    // Text inputs are streams (they may be pipes: --in <(zcat corpus.gz)), unlike the files of
    // runtime/input_file.hpp.
    std::string text;
    data::TextChunkReader reader(inputs[0], 1 << 20);
    for (std::string_view chunk; reader.next(&chunk);) text += chunk;
    auto ids = tokenizer.encode(text, special, threads);
    if (!vm.count("no-template")) ids = tokenizer.apply_template(std::move(ids));
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::cout << line << "\n";
    return 0;
  }
  if (out.empty()) throw Error("pass --out PREFIX (or --ids to print the ids).");

  CorpusTokenizeOptions options;
  options.val_fraction = val_fraction;
  options.special = special;
  options.eot_between_files = vm.count("eot-between-files") > 0;
  options.add_template = vm.count("no-template") == 0;
  options.threads = threads;
  std::vector<std::filesystem::path> paths(inputs.begin(), inputs.end());
  const auto start = std::chrono::steady_clock::now();
  const auto report = tokenize_corpus(tokenizer, paths, out, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "wrote " << report.train_path.string() << ": " << report.train_tokens
            << " tokens\n";
  if (!report.val_path.empty())
    std::cout << "wrote " << report.val_path.string() << ": " << report.val_tokens << " tokens\n";
  std::printf("%.2f MB of text in %.2f s (%.1f MB/s), vocabulary %zu\n",
              static_cast<double>(report.bytes) / 1e6, seconds,
              static_cast<double>(report.bytes) / 1e6 / std::max(seconds, 1e-9),
              tokenizer.vocab_size());
  return 0;
}

cli::RegisterCommand reg{{"tokenize", "Tokenize text files into token files (or print ids)",
                          run_tokenize}};

}  // namespace
