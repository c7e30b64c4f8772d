// Tokenizer throughput: GPT-2 encoding of tinyshakespeare (single thread and all threads, MB/s
// and tokens/s, each call starting from an empty piece cache; also on the text repeated 8 times)
// and the BPE trainer's time for an 8k vocabulary. Prints one JSON object.
//   bench_tokenizer [SHARED_DATA_DIR]   (default: $MAGELLANO_SHARED_DATA, else ../shared/data)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "magellano/data/bpe_trainer.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/data/unicode_class.hpp"

using namespace magellano::data;
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Median seconds of `reps` timed encodes (after one warm-up).
double time_encode(const Tokenizer& t, const std::string& text, unsigned threads, int reps,
                   size_t* tokens) {
  *tokens = t.encode(text, SpecialTokens::AsText, threads).size();
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = t.encode(text, SpecialTokens::AsText, threads);
    times.push_back(seconds_since(t0));
    if (ids.size() != *tokens) std::abort();
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  fs::path data = argc > 1                                   ? fs::path(argv[1])
                  : std::getenv("MAGELLANO_SHARED_DATA") ? fs::path(std::getenv("MAGELLANO_SHARED_DATA"))
                                                             : fs::path("../shared/data");
  if (!fs::is_directory(data / "gpt2")) {
    std::cerr << "error: " << (data / "gpt2").string()
              << " not found; pass the shared data folder as the first argument.\n";
    return 1;
  }
  nlohmann::json out;
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  out["date"] = date;
  out["hardware_threads"] = std::thread::hardware_concurrency();
  out["unicode_tables"] = unicode_tables_version();

  const auto t_load = std::chrono::steady_clock::now();
  const Tokenizer gpt2 = Tokenizer::load(data / "gpt2");
  out["gpt2_load_seconds"] = seconds_since(t_load);

  const fs::path corpus = data / "corpus" / "tinyshakespeare.txt";
  const std::string text = slurp(corpus);
  const double mb = static_cast<double>(text.size()) / 1e6;
  const unsigned all = std::max(1u, std::thread::hardware_concurrency());
  nlohmann::json enc;
  enc["corpus"] = corpus.filename().string();
  enc["bytes"] = text.size();
  for (unsigned threads : {1u, all}) {
    size_t tokens = 0;
    const double s = time_encode(gpt2, text, threads, 7, &tokens);
    enc["tokens"] = tokens;
    nlohmann::json r{{"threads", threads},
                     {"seconds", s},
                     {"MB_per_s", mb / s},
                     {"tokens_per_s", static_cast<double>(tokens) / s}};
    enc[threads == 1 ? "single_thread" : "all_threads"] = r;
  }
  out["gpt2_encode"] = enc;

  // The same text 8 times (~9 MB): per-thread caches warm up, as on a real corpus.
  std::string big;
  for (int i = 0; i < 8; ++i) big += text;
  nlohmann::json enc8{{"corpus", "tinyshakespeare.txt x 8"}, {"bytes", big.size()}};
  for (unsigned threads : {1u, all}) {
    size_t tokens = 0;
    const double s = time_encode(gpt2, big, threads, 3, &tokens);
    enc8[threads == 1 ? "single_thread" : "all_threads"] = {
        {"threads", threads},
        {"MB_per_s", static_cast<double>(big.size()) / 1e6 / s},
        {"tokens_per_s", static_cast<double>(tokens) / s}};
  }
  out["gpt2_encode_x8"] = enc8;

  const std::vector<fs::path> train_files = {data / "corpus" / "tinyshakespeare.txt",
                                             data / "corpus" / "tinystories_train_head_944KB.txt"};
  const auto t_train = std::chrono::steady_clock::now();
  WordCounter words;
  words.add_files(train_files);
  const double count_s = seconds_since(t_train);
  BpeTrainReport report;
  const BpeModel model = train_bpe(words, 8192, &report);
  const double total_s = seconds_since(t_train);
  out["bpe_train_8k"] = {{"corpus_bytes", words.bytes()},
                         {"corpus", "tinyshakespeare.txt + tinystories_train_head_944KB.txt"},
                         {"distinct_words", report.words},
                         {"merges", report.merges},
                         {"vocab_size", model.tokens.size()},
                         {"count_words_seconds", count_s},
                         {"total_seconds", total_s}};
  std::cout << out.dump(2) << "\n";
  return 0;
}
