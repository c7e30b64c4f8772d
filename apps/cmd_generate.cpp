// magellano generate --checkpoint DIR [--adapter DIR [--base-precision P]]
//   (--prompt TEXT | --prompt-file F | --prompt-ids "1 2 3") [--tokenizer DIR] [--allow-special]
//   [--no-template] [--max-new-tokens N]
//   [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--stop STRING]... [--seed S]
//   [--json] [--device D]
// magellano generate --checkpoint DIR --infill "text with [MASK] blanks" [the same sampling options]
//   fills each [MASK] (a blank-infilling model, generate/infill.hpp) and prints the filled text;
//   --json: {"part_a", "spans", "span_texts", "finish_reasons", "text"}.
// Text streams to stdout as it is produced (one prompt), or prompt by prompt in order (several);
// --json prints one object per prompt per line: {"prompt_ids", "ids", "text", "finish_reason"}.
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "command.hpp"
#include "model_source.hpp"
#include "options.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/generate/generator.hpp"
#include "magellano/generate/infill.hpp"
#include "magellano/io/hf_json.hpp"
#include "magellano/io/hf_mamba_config.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace magellano;

namespace {

// "1 2 3" or "1,2,3".
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::string word;
  std::istringstream in(s);
  while (in >> word) {
    std::istringstream parts(word);
    std::string part;
    while (std::getline(parts, part, ',')) {
      if (part.empty()) continue;
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(part, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != part.size() || v < 0 || v > INT32_MAX)
        throw Error("--prompt-ids: '" + part + "' is not a token id; give non-negative integers, e.g. --prompt-ids \"464 3290\".");
      ids.push_back(static_cast<int32_t>(v));
    }
  }
  if (ids.empty()) throw Error("--prompt-ids is empty; give at least one token id, e.g. --prompt-ids \"50256\".");
  return ids;
}

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

// What the command line asks for.
struct GenerateRequest {
  cli::ModelSource source;
  std::optional<std::string> prompt, prompt_file, prompt_ids, infill;  // exactly one, once validated
  std::string tokenizer_dir, device;
  std::vector<std::string> stops;
  bool allow_special = false, add_template = true;
  generate::GenerationConfig gc;
  int64_t seed = 0;
  bool json = false;
};

// Parses the command line; nullopt after --help.
std::optional<GenerateRequest> parse_request(int argc, char** argv) {
  po::options_description opts(
      "magellano generate: continue prompts with a model (prefill with the parallel forward, then\n"
      "one recurrent step per token; sampling on the device)\n"
      "  magellano generate --checkpoint DIR (--prompt TEXT | --prompt-file F | --prompt-ids \"1 2 3\")\n"
      "--json prints one object per prompt per line: prompt_ids, ids, text, finish_reason.\n"
      "Options");
  GenerateRequest req;
  generate::GenerationConfig& gc = req.gc;
  cli::add_common_options(opts, cli::kDevice | cli::kJson);
  cli::add_model_source_options(opts, req.source);
  opts.add_options()
      ("prompt", po::value<std::string>(), "the prompt text")
      ("prompt-file", po::value<std::string>(), "a file of prompts, one per line (blank lines skipped), generated as one batch")
      ("prompt-ids", po::value<std::string>(), "the prompt as token ids, e.g. \"464 3290\" (needs no tokenizer)")
      ("infill", po::value<std::string>(), "text with [MASK] blanks to fill (a model trained with blank_infilling); "
                                           "--max-new-tokens is per blank")
      ("tokenizer", po::value(&req.tokenizer_dir), "tokenizer folder (default: the checkpoint folder's tokenizer files, else the config's data.tokenizer)")
      ("allow-special", "turn literal special tokens in the prompt (e.g. <|endoftext|>, <|start_of_role|>) into their "
                        "ids (default: plain text)")
      ("no-template", "do not add the tokenizer's template tokens to text prompts (tokenizer.json's post-processor, "
                      "e.g. Llama-3's BOS; default: added, as transformers' add_special_tokens=True)")
      ("stop", po::value(&req.stops), "stop when the text contains STRING (repeatable); the text is cut before it");
  constexpr int64_t kMax = INT64_MAX;  // no upper bound
  cli::add_integer_option(opts, "max-new-tokens", &gc.max_new_tokens, 0, kMax, "tokens to generate at most per prompt");
  cli::add_number_option(opts, "temperature", &gc.sampling.temperature, {0, INFINITY}, "softmax temperature; 0 = greedy");
  cli::add_integer_option(opts, "top-k", &gc.sampling.top_k, 0, kMax, "keep the K most likely tokens (0 = off)");
  cli::add_number_option(opts, "top-p", &gc.sampling.top_p, {0, 1},
                         "nucleus: keep the smallest top set holding P of the probability (1 = off)");
  cli::add_number_option(opts, "repetition-penalty", &gc.sampling.repetition_penalty, {0, INFINITY, true},
                         "divide positive / multiply negative logits of tokens already in the context (1 = off)");
  cli::add_integer_option(opts, "seed", &req.seed, 0, kMax, "random seed of the sampler");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return std::nullopt;
  auto given = [&](const char* key) {
    return vm.count(key) ? std::optional<std::string>(vm[key].as<std::string>()) : std::nullopt;
  };
  req.prompt = given("prompt");
  req.prompt_file = given("prompt-file");
  req.prompt_ids = given("prompt-ids");
  req.infill = given("infill");
  req.allow_special = vm.count("allow-special") > 0;
  req.add_template = vm.count("no-template") == 0;
  req.device = cli::device_option(vm);
  req.json = cli::json_option(vm);
  return req;
}

// Checks what needs no file or device (the numbers were range-checked when parsed); sets the
// sampler's seed and the stop strings.
void validate(GenerateRequest& req) {
  generate::GenerationConfig& gc = req.gc;
  if (req.source.checkpoint.empty()) throw Error("generate: give --checkpoint DIR.");
  if (req.prompt.has_value() + req.prompt_file.has_value() + req.prompt_ids.has_value() + req.infill.has_value() != 1)
    throw Error("generate: give exactly one of --prompt TEXT, --prompt-file FILE, --prompt-ids \"1 2 3\" or --infill TEXT.");
  if (req.infill && req.infill->find("[MASK]") == std::string::npos)
    throw Error("generate: --infill needs at least one [MASK] in the text, e.g. --infill \"To be, or [MASK] to be\".");
  if (req.infill && !req.stops.empty()) throw Error("generate: --stop does not apply to --infill (a blank ends at [END]).");
  gc.sampling.seed = static_cast<uint64_t>(req.seed);
  for (const auto& s : req.stops)
    if (s.empty()) throw Error("--stop needs a non-empty string.");
  gc.stop = req.stops;
}

// The prompts as given: texts (--prompt, or --prompt-file's non-blank lines) or ids
// (--prompt-ids). Read before any device work, so bad input fails fast.
struct Prompts {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> ids;
};

Prompts read_prompts(const GenerateRequest& req) {
  Prompts p;
  if (req.prompt) {
    if (req.prompt->empty()) throw Error("--prompt is empty; give some text (or --prompt-ids).");
    p.texts.push_back(*req.prompt);
  } else if (req.prompt_file) {
    const std::string& file = *req.prompt_file;
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error("--prompt-file: cannot read '" + file + "'.");
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) p.texts.push_back(line);
    }
    if (p.texts.empty()) throw Error("--prompt-file '" + file + "' holds no prompt (one per line).");
  }
  if (req.prompt_ids) p.ids.push_back(parse_ids(*req.prompt_ids));
  return p;
}

// The tokenizer (find_tokenizer), required for text prompts and --stop, and checked against the
// model's vocabulary.
std::optional<data::Tokenizer> load_tokenizer(const GenerateRequest& req, const train::LoadedModel& loaded,
                                              const Prompts& prompts) {
  const int64_t V = loaded.config.model.vocab_size;
  std::string why_none;
  auto tok = cli::find_tokenizer(req.tokenizer_dir, req.source.checkpoint, loaded.config, why_none);
  if (!tok && (!prompts.texts.empty() || !req.stops.empty()))
    throw Error("generate: " + std::string(prompts.texts.empty() ? "--stop" : "a text prompt") + " needs a tokenizer, and " +
                why_none + ". Pass --tokenizer DIR, or give --prompt-ids without --stop.");
  if (tok && static_cast<int64_t>(tok->vocab_size()) > V)
    throw Error("generate: the tokenizer has " + std::to_string(tok->vocab_size()) + " ids but the model only " +
                std::to_string(V) + ": it is not this model's tokenizer (pass --tokenizer DIR).");
  return tok;
}

// Every prompt as ids: the given ids, or the texts encoded (with the tokenizer's template unless
// --no-template).
std::vector<std::vector<int32_t>> prompt_ids(Prompts prompts, const std::optional<data::Tokenizer>& tok,
                                             const GenerateRequest& req) {
  for (const auto& t : prompts.texts) {
    auto encoded = tok->encode(t, req.allow_special ? data::SpecialTokens::Allowed : data::SpecialTokens::AsText);
    if (req.add_template) encoded = tok->apply_template(std::move(encoded));
    std::vector<int32_t> ids;
    for (uint32_t id : encoded) ids.push_back(static_cast<int32_t>(id));
    prompts.ids.push_back(std::move(ids));
  }
  return std::move(prompts.ids);
}

// The bytes of a token id (empty for an id outside the tokenizer); none without a tokenizer.
generate::TokenBytes token_bytes(const std::optional<data::Tokenizer>& tok) {
  if (!tok) return {};
  return [&tok](int32_t id) -> std::string {
    return id >= 0 && static_cast<size_t>(id) < tok->vocab_size() ? tok->token_bytes(static_cast<uint32_t>(id))
                                                                   : std::string();
  };
}

// The output. One prompt: text (or, without a tokenizer, ids) streams as it comes. Several:
// each prompt's result is printed once it and every prompt before it have finished. --json: one
// object per prompt per line, in order.
class ResultPrinter {
 public:
  ResultPrinter(size_t prompts, bool json, bool has_tokenizer)
      : n_(prompts), json_(json), tok_(has_tokenizer), done_(prompts) {}

  generate::GenerationCallbacks callbacks() {
    generate::GenerationCallbacks cb;
    if (!json_ && n_ == 1) {
      if (tok_) cb.on_text = [](size_t, std::string_view bytes) { std::cout << bytes << std::flush; };
      else cb.on_token = [first = true](size_t, int32_t id) mutable {
          std::cout << (first ? "" : " ") << id << std::flush;
          first = false;
        };
    }
    cb.on_finish = [this](size_t b, const generate::Completion& c) { finished(b, c); };
    return cb;
  }

 private:
  void finished(size_t b, const generate::Completion& c) {
    done_[b] = c;
    while (next_ < n_ && done_[next_]) {
      print(next_, *done_[next_]);
      ++next_;
    }
  }

  void print(size_t b, const generate::Completion& c) const {
    if (json_) {
      nlohmann::json j{{"prompt_ids", c.prompt_ids}, {"ids", c.ids},
                       {"text", tok_ ? nlohmann::json(c.text) : nlohmann::json(nullptr)},
                       {"finish_reason", generate::to_string(c.finish)}};
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else if (n_ > 1) {
      std::cout << "==> prompt " << b + 1 << " <==\n" << (tok_ ? c.text : ids_line(c.ids)) << "\n";
    } else {
      std::cout << "\n";  // the streamed text ends with a newline
    }
    std::cout.flush();
  }

  size_t n_;
  bool json_, tok_;
  std::vector<std::optional<generate::Completion>> done_;
  size_t next_ = 0;
};

// "[T tokens for n prompts in S s on DEVICE]" on stderr.
void report_speed(const std::vector<generate::Completion>& results, size_t n, double seconds, const Context& ctx) {
  size_t tokens = 0;
  for (const auto& r : results) tokens += r.ids.size();
  std::cerr << "[" << tokens << " tokens for " << n << (n == 1 ? " prompt" : " prompts") << " in " << seconds
            << " s on " << ctx.device().name << "]\n";
}

// --infill: part A is the text's pieces between the "[MASK]"s, encoded, joined by [MASK] ids.
int run_infill(const GenerateRequest& req, const train::LoadedModel& loaded, const Context& ctx) {
  const auto& objective = loaded.config.train.objective;
  if (!objective.uses(data::Objective::blank_infilling))
    throw Error("generate --infill: the checkpoint was trained with train.objective \"" +
                std::string(data::to_string(objective.objective)) + "\"" + (objective.mixed() ? " (a mix)" : "") +
                ", not blank_infilling: it has not learnt [MASK], [START] and [END].");
  const int64_t V = loaded.config.model.vocab_size;
  const data::InfillTokens tokens = data::infill_tokens(V);
  Prompts none;
  none.texts.push_back(*req.infill);
  const auto tok = load_tokenizer(req, loaded, none);
  data::require_infill_room(tok->vocab_size(), V, "the tokenizer");
  std::vector<uint32_t> encoded;
  const std::string& text = *req.infill;
  const std::string mask = "[MASK]";
  for (size_t begin = 0;;) {
    const size_t at = text.find(mask, begin);
    const auto piece = tok->encode(text.substr(begin, at == std::string::npos ? std::string::npos : at - begin),
                                   req.allow_special ? data::SpecialTokens::Allowed : data::SpecialTokens::AsText);
    encoded.insert(encoded.end(), piece.begin(), piece.end());
    if (at == std::string::npos) break;
    encoded.push_back(static_cast<uint32_t>(tokens.mask));
    begin = at + mask.size();
  }
  if (req.add_template) encoded = tok->apply_template(std::move(encoded));
  const std::vector<int32_t> part_a(encoded.begin(), encoded.end());
  generate::GenerationConfig gc = req.gc;
  gc.eos_ids = cli::find_eos(tok, req.source.checkpoint, loaded);
  const auto start = std::chrono::steady_clock::now();
  const auto bytes = token_bytes(tok);
  const generate::Infill r = generate::fill_blanks(*loaded.model, part_a, tokens, gc, bytes);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (req.json) {
    std::vector<std::string> span_texts, finish;
    for (const auto& span : r.spans) {
      std::string t;
      for (const int32_t id : span) t += bytes(id);
      span_texts.push_back(t);
    }
    for (const auto f : r.finish) finish.push_back(generate::to_string(f));
    const nlohmann::json j{{"part_a", r.part_a}, {"spans", r.spans}, {"span_texts", span_texts},
                           {"finish_reasons", finish}, {"text", r.text}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << r.text << "\n";
    size_t n = 0;
    for (const auto& span : r.spans) n += span.size();
    std::cerr << "[" << r.spans.size() << (r.spans.size() == 1 ? " blank, " : " blanks, ") << n << " tokens in "
              << seconds << " s on " << ctx.device().name << "]\n";
  }
  return 0;
}

int run_generate(int argc, char** argv) {
  auto req = parse_request(argc, argv);
  if (!req) return 0;
  validate(*req);
  Prompts prompts = read_prompts(*req);

  auto ctx = Context::create(req->device);
  const auto loaded = cli::load_model_source(req->source, *ctx);
  if (req->infill) return run_infill(*req, loaded, *ctx);
  const auto tok = load_tokenizer(*req, loaded, prompts);
  const auto ids = prompt_ids(std::move(prompts), tok, *req);
  req->gc.eos_ids = cli::find_eos(tok, req->source.checkpoint, loaded);
  // A model trained as a prefix-LM reads its prompt as the prefix (generator.hpp).
  req->gc.prompt_as_prefix = loaded.config.train.objective.objective == data::Objective::prefix_lm;

  ResultPrinter printer(ids.size(), req->json, tok.has_value());
  const auto start = std::chrono::steady_clock::now();
  const auto results = generate::generate(*loaded.model, ids, req->gc, token_bytes(tok), printer.callbacks());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!req->json) report_speed(results, ids.size(), seconds, *ctx);
  return 0;
}

cli::RegisterCommand reg{{"generate", "Generate text from a checkpoint (recurrent decoding, sampling on the device)",
                          run_generate}};

}  // namespace
