// `bench tokenizer`: host code (no OpenCL): GPT-2 encoding of tinyshakespeare, one thread and
// all hardware threads, each call starting from an empty piece cache, also on the text
// repeated 8 times (caches warm up as on a real corpus); and the BPE trainer's time for an 8k
// vocabulary on tinyshakespeare + the TinyStories head. GB/s = text bytes per second, reported
// against the host's single-thread copy bandwidth (it is host code).
// --data DIR: the shared data folder (default $MAGELLANO_SHARED_DATA, else shared/data or
// ../shared/data under io::project_roots: ./, the executable's folders, the source tree).
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench.hpp"
#include "magellano/data/bpe_trainer.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/io/project_files.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {
namespace fs = std::filesystem;
using namespace magellano::data;

fs::path data_dir(const Options& opts) {
  if (opts.has("data")) return opts.str("data");
#ifdef MAGELLANO_SOURCE_DIR
  const fs::path found = io::find_shared_data(MAGELLANO_SOURCE_DIR);
#else
  const fs::path found = io::find_shared_data({});
#endif
  return found.empty() ? fs::path("shared/data") : found;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string() + ".");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Result> run_tokenizer(Context&, const Peaks&, const Options& opts) {
  const fs::path data = data_dir(opts);
  if (!fs::is_directory(data / "gpt2"))
    throw Error((data / "gpt2").string() + " not found: pass the shared data folder with --data DIR.");
  const int repeats = repeats_option(opts, 5);
  const Tokenizer gpt2 = Tokenizer::load(data / "gpt2");
  const std::string text = slurp(data / "corpus" / "tinyshakespeare.txt");
  std::string big;
  for (int i = 0; i < 8; ++i) big += text;
  const unsigned all = std::max(1u, std::thread::hardware_concurrency());

  std::vector<Result> out;
  const std::vector<std::pair<std::string, const std::string*>> corpora = {{"tinyshakespeare", &text},
                                                                         {"tinyshakespeare_x8", &big}};
  for (const auto& [label, corpus] : corpora)
    for (unsigned threads : {1u, all}) {
      size_t tokens = gpt2.encode(*corpus, SpecialTokens::AsText, threads).size();
      const double s = median_host_seconds(repeats, [&] {
        if (gpt2.encode(*corpus, SpecialTokens::AsText, threads).size() != tokens)
          throw Error("tokenizer benchmark: the token count changed between runs");
      });
      Result r;
      r.name = "tokenizer_gpt2_encode";
      r.host = true;
      r.sizes = {{"corpus", label}, {"bytes", corpus->size()}, {"threads", threads}};
      r.median_s = s;
      r.repeats = repeats;
      r.gbps = double(corpus->size()) / s / 1e9;
      r.tokens_per_s = double(tokens) / s;
      r.extra = {{"tokens", tokens}, {"mb_per_s", double(corpus->size()) / s / 1e6}};
      out.push_back(r);
    }

  const std::vector<fs::path> files = {data / "corpus" / "tinyshakespeare.txt",
                                       data / "corpus" / "tinystories_train_head_944KB.txt"};
  BpeTrainReport report;
  uint64_t bytes = 0;
  size_t vocab = 0;
  const double s = median_host_seconds(std::min(repeats, 3), [&] {
    WordCounter words;
    words.add_files(files);
    bytes = words.bytes();
    vocab = train_bpe(words, 8192, &report).tokens.size();
  });
  Result r;
  r.name = "tokenizer_bpe_train_8k";
  r.host = true;
  r.sizes = {{"corpus", "tinyshakespeare + tinystories_train_head_944KB"}, {"bytes", bytes}, {"vocab", 8192}};
  r.median_s = s;
  r.repeats = std::min(repeats, 3);
  r.gbps = double(bytes) / s / 1e9;
  r.extra = {{"distinct_words", report.words}, {"merges", report.merges}, {"vocab_size", vocab}};
  out.push_back(r);
  return out;
}

RegisterBench reg{{"tokenizer", "GPT-2 encoding and BPE training on the host (text GB/s, tokens/s)",
                   {{"data", Key::text, "", "the shared data folder (default: $MAGELLANO_SHARED_DATA, else shared/data "
                                            "or ../shared/data, else ../shared/data beside the source tree)"}},
                   run_tokenizer}};

}  // namespace
}  // namespace magellano::bench
