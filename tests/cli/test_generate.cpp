// `magellano generate` as a real process: bad input gives one clear line and a non-zero exit;
// a Magellano checkpoint with its tokenizer in the folder generates text, --json, --stop,
// batches from --prompt-file; --prompt-ids works without a tokenizer and with a Hugging Face
// Mamba folder.
#include <cmath>
#include <fstream>
#include <sstream>

#include <algorithm>

#include "cli.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/data/bpe_trainer.hpp"
#include "magellano/data/tokenizer.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/ops/matrix_engine.hpp"
#include "magellano/train/checkpoint.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

namespace {

const char* kText =
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on and on.\n"
    "A model reads the text, then writes more text, one token after another token.\n";

CliRun gen(std::vector<std::string> args) {
  args.insert(args.begin(), "generate");
  return run_cli(args, device_env());
}

void write_weights(const magellano::nn::Model& m, const fs::path& dir) {
  std::vector<std::pair<std::string, magellano::io::StTensor>> weights;
  for (const auto& p : m.parameters()) weights.emplace_back(p.name, magellano::io::to_st(p.tensor));
  magellano::io::write_safetensors(dir / "model.safetensors", weights, {{"format", "pt"}});
}

// A Magellano checkpoint folder (config.json + model.safetensors, random weights), with a
// 300-id tokenizer trained on kText in the folder when `with_tokenizer`; `changes` is merged
// into the config (e.g. another model.layers).
void write_checkpoint(const fs::path& dir, bool with_tokenizer, const nlohmann::json& changes = nlohmann::json::object()) {
  fs::create_directories(dir);
  nlohmann::json j = {{"model", {{"vocab_size", 300}, {"dim", 16}, {"layers", "MEM"}, {"d_state", 8},
                                 {"moe", {{"experts", 4}, {"top_k", 2}, {"hidden", 32}}}}}};
  j.merge_patch(changes);
  const auto cfg = magellano::train::Config::from_json(j);
  magellano::io::write_json_atomically(dir / "config.json", cfg.to_json());
  write_weights(magellano::nn::Model(test_ctx(), magellano::train::model_spec(cfg.model), 3), dir);
  if (with_tokenizer) {
    magellano::data::WordCounter words;
    words.add_text(kText);
    magellano::data::save_bpe_model(magellano::data::train_bpe(words, 300), dir);
  }
}

std::string single_line_json(const std::string& output) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') return line;
  return {};
}

}  // namespace

TEST(GenerateCli, BadInputIsOneClearLine) {
  MG_REQUIRE_CLI();
  TempDir d;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string missing = (d.path() / "nope").string();
  const std::vector<Case> cases = {
      {{"--prompt", "hi"}, "error: generate: give --checkpoint DIR."},
      {{"--checkpoint", missing}, "give exactly one of --prompt TEXT, --prompt-file FILE, --prompt-ids \"1 2 3\" or --infill TEXT"},
      {{"--checkpoint", missing, "--infill", "no blank"}, "--infill needs at least one [MASK] in the text"},
      {{"--checkpoint", missing, "--infill", "a [MASK]", "--stop", "x"}, "--stop does not apply to --infill"},
      {{"--checkpoint", missing, "--prompt", "a", "--prompt-ids", "1"}, "give exactly one of"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--top-k", "abc"}, "top-k"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--top-p", "1.5"}, "--top-p must be in [0, 1]"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--temperature=-1"}, "--temperature must be"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--repetition-penalty", "0"}, "--repetition-penalty must be"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--max-new-tokens=-3"}, "--max-new-tokens must be >= 0"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--max-new-tokens", "ten"}, "max-new-tokens"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--seed=-4"}, "--seed must be >= 0"},
      {{"--checkpoint", missing, "--prompt-ids", "1 x2"}, "'x2' is not a token id"},
      {{"--checkpoint", missing, "--prompt-ids", " "}, "--prompt-ids is empty"},
      {{"--checkpoint", missing, "--prompt", ""}, "--prompt is empty"},
      {{"--checkpoint", missing, "--prompt-file", missing}, "cannot read"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--stop", ""}, "--stop needs a non-empty string"},
      {{"--checkpoint", missing, "--prompt-ids", "1", "--compute-dtype", "fp8"},
       "--compute-dtype must be fp32, tf32 or bf16, got 'fp8'"},
      {{"--checkpoint", missing, "--prompt-ids", "1"}, "is not a directory"},
  };
  for (const auto& c : cases) {
    const auto r = gen(c.args);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << "expected '" << c.says << "' in: " << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

// Damaged weights never generate: a NaN or Inf one is refused at load (naming it), and finite
// weights whose output overflows give an error instead of garbage with exit 0.
TEST(GenerateCli, NonFiniteWeightsOrLogitsAreAnError) {
  MG_REQUIRE_CLI();
  TempDir d;
  write_checkpoint(d.path(), false);
  const fs::path weights = d.path() / "model.safetensors";
  const std::vector<std::string> args = {"generate", "--checkpoint", d.path().string(), "--prompt-ids", "5 17",
                                         "--max-new-tokens", "3"};
  ASSERT_EQ(run_on_device(args).exit_code, 0);
  set_weight_values(weights, "backbone.embeddings.weight", NAN, 7);
  EXPECT_TRUE(fails_with_one_line(run_on_device(args), 1, "loading 'backbone.embeddings.weight' from " +
                                                              weights.string() + ": element 7 of 4800 is NaN"));
  set_weight_values(weights, "", 3e38f);
  EXPECT_TRUE(fails_with_one_line(run_on_device(args), 1, "generate: the model's output for the prompt is not finite"));
}

TEST(GenerateCli, IdsWithoutATokenizerAndTextNeedsOne) {
  MG_REQUIRE_CLI();
  TempDir d;
  write_checkpoint(d.path(), false);
  auto r = gen({"--checkpoint", d.path().string(), "--prompt-ids", "5 17,42", "--max-new-tokens", "6",
                "--temperature", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(single_line_json(r.output));
  EXPECT_EQ(j["prompt_ids"], nlohmann::json({5, 17, 42}));
  EXPECT_EQ(j["ids"].size(), 6u);
  EXPECT_TRUE(j["text"].is_null());
  EXPECT_EQ(j["finish_reason"], "length");
  // Streamed ids (no --json) are the same ids.
  r = gen({"--checkpoint", d.path().string(), "--prompt-ids", "5 17 42", "--max-new-tokens", "6", "--temperature", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string ids_line;
  for (size_t i = 0; i < j["ids"].size(); ++i) ids_line += (i ? " " : "") + std::to_string(j["ids"][i].get<int>());
  EXPECT_EQ(r.output.rfind(ids_line + "\n", 0), 0u) << r.output;

  r = gen({"--checkpoint", d.path().string(), "--prompt", "hello"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("needs a tokenizer"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--tokenizer DIR"), std::string::npos) << r.output;
  r = gen({"--checkpoint", d.path().string(), "--prompt-ids", "1 300"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("outside the model's vocabulary"), std::string::npos) << r.output;
}

TEST(GenerateCli, TextJsonStopStringsAndBatches) {
  MG_REQUIRE_CLI();
  TempDir d;
  write_checkpoint(d.path(), true);
  const std::string ck = d.path().string();
  // A random model emits any bytes, invalid UTF-8 included: --json replaces those with U+FFFD,
  // the stream prints them raw. The test decodes the ids itself to know the raw text.
  const auto tok = magellano::data::Tokenizer::load(d.path());
  auto raw_text = [&](const nlohmann::json& ids) {
    std::vector<uint32_t> v;
    for (const auto& id : ids) v.push_back(id.get<uint32_t>());
    if (!v.empty() && v.back() == *tok.eot_id()) v.pop_back();
    return tok.decode(v);
  };
  auto as_json_text = [](const std::string& raw) {  // what --json makes of raw bytes
    return nlohmann::json::parse(nlohmann::json(raw).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  };
  auto r = gen({"--checkpoint", ck, "--prompt", "The fox", "--max-new-tokens", "12", "--temperature", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(single_line_json(r.output));
  const std::string text = raw_text(j["ids"]);
  ASSERT_LE(j["ids"].size(), 12u);
  // bf16 compute: the same tokens wherever the device has no matrix engine (products stay fp32).
  if (!magellano::ops::matrix_engine(test_ctx()).bf16) {
    auto rb = gen({"--checkpoint", ck, "--prompt", "The fox", "--max-new-tokens", "12", "--temperature", "0", "--json",
                   "--compute-dtype", "bf16"});
    ASSERT_EQ(rb.exit_code, 0) << rb.output;
    EXPECT_EQ(nlohmann::json::parse(single_line_json(rb.output))["ids"], j["ids"]);
  }
  EXPECT_EQ(j["finish_reason"], j["ids"].size() == 12u && j["ids"].back() != *tok.eot_id() ? "length" : "eos");
  EXPECT_EQ(j["text"], as_json_text(text));
  ASSERT_GE(text.size(), 8u);

  // The same text streams to stdout (then a newline, then the summary on stderr).
  r = gen({"--checkpoint", ck, "--prompt", "The fox", "--max-new-tokens", "12", "--temperature", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind(text + "\n", 0), 0u) << r.output;

  // A stop string from the middle of that text (3 bytes, no NUL: it goes through argv): the
  // text ends before its first occurrence.
  size_t at = text.size() / 2;
  while (at + 3 < text.size() && text.substr(at, 3).find('\0') != std::string::npos) ++at;
  const std::string stop = text.substr(at, 3);
  ASSERT_EQ(stop.find('\0'), std::string::npos);
  r = gen({"--checkpoint", ck, "--prompt", "The fox", "--max-new-tokens", "12", "--temperature", "0", "--json",
           "--stop", "no such string", "--stop", stop});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto s = nlohmann::json::parse(single_line_json(r.output));
  EXPECT_EQ(s["text"], as_json_text(text.substr(0, text.find(stop))));
  EXPECT_EQ(s["finish_reason"], "stop");
  EXPECT_LT(s["ids"].size(), j["ids"].size() + 1);

  // A batch of prompts of different lengths (blank lines skipped): one JSON line each, in
  // order, each with the ids it gets alone.
  const fs::path prompts = d.path() / "prompts.txt";
  std::ofstream(prompts) << "The fox\n\nA model reads the text, then\r\nlazy\n";
  r = gen({"--checkpoint", ck, "--prompt-file", prompts.string(), "--max-new-tokens", "12", "--temperature", "0",
           "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u) << r.output;
  EXPECT_EQ(rows[0]["ids"], j["ids"]);
  EXPECT_EQ(rows[0]["text"], j["text"]);
  std::vector<std::string> texts = {text};
  for (size_t i = 1; i < 3; ++i) {
    const char* p = i == 1 ? "A model reads the text, then" : "lazy";
    const auto alone = gen({"--checkpoint", ck, "--prompt", p, "--max-new-tokens", "12", "--temperature", "0", "--json"});
    EXPECT_EQ(nlohmann::json::parse(single_line_json(alone.output))["ids"], rows[i]["ids"]) << p;
    texts.push_back(raw_text(rows[i]["ids"]));
  }
  // Without --json, each prompt's text under a header, in order.
  r = gen({"--checkpoint", ck, "--prompt-file", prompts.string(), "--max-new-tokens", "12", "--temperature", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string want;
  for (size_t i = 0; i < 3; ++i) want += "==> prompt " + std::to_string(i + 1) + " <==\n" + texts[i] + "\n";
  EXPECT_EQ(r.output.rfind(want, 0), 0u) << r.output;
}

TEST(GenerateCli, HuggingFaceMambaFolderWithIds) {
  MG_REQUIRE_CLI();
  TempDir d;
  magellano::nn::ModelSpec spec;
  spec.vocab_size = 50, spec.dim = 16, spec.layers = "MM";
  spec.mamba.d_state = 16;
  write_weights(magellano::nn::Model(test_ctx(), spec, 5), d.path());
  magellano::io::write_json_atomically(d.path() / "config.json",
      {{"model_type", "mamba"}, {"vocab_size", 50}, {"hidden_size", 16}, {"state_size", 16},
       {"num_hidden_layers", 2}, {"expand", 2}, {"conv_kernel", 4}, {"eos_token_id", 0}});
  const auto r = gen({"--checkpoint", d.path().string(), "--prompt-ids", "3 4 5", "--max-new-tokens", "5",
                      "--json", "--seed", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(single_line_json(r.output));
  ASSERT_GE(j["ids"].size(), 1u);
  ASSERT_LE(j["ids"].size(), 5u);
  // Ends at the config's eos_token_id (0) or at the length limit.
  const bool eos = j["ids"].back() == 0;
  EXPECT_EQ(j["finish_reason"], eos ? "eos" : "length");
  if (!eos) EXPECT_EQ(j["ids"].size(), 5u);
}

// A tokenizer.json folder given with --tokenizer (the same 300-id BPE in Hugging Face's format, a
// BOS template of <|endoftext|>): text prompts get the template (unless --no-template), and
// generation stops at the first of the config's eos_token_id list.
TEST(GenerateCli, TokenizerJsonTemplateAndEosList) {
  MG_REQUIRE_CLI();
  TempDir d;
  write_checkpoint(d.path(), true);
  const auto model = magellano::data::load_bpe_model(d.path());
  const uint32_t eot = 299;
  ASSERT_EQ(model.tokens[eot], "<|endoftext|>");
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream lines(magellano::data::merges_text(model));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] != '#') merges.push_back(line);
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  nlohmann::json bos_piece, text_piece, specials;
  bos_piece["SpecialToken"] = {{"id", "<|endoftext|>"}, {"type_id", 0}};
  text_piece["Sequence"] = {{"id", "A"}, {"type_id", 0}};
  specials["<|endoftext|>"] = {{"id", "<|endoftext|>"}, {"ids", {eot}}, {"tokens", {"<|endoftext|>"}}};
  const nlohmann::json tj = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", eot}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", {{"type", "TemplateProcessing"}, {"single", {bos_piece, text_piece}}, {"special_tokens", specials}}},
      {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"vocab", nlohmann::json::parse(magellano::data::encoder_json_text(model))}, {"merges", merges}}}};
  const fs::path tok = d / "hf_tok";
  fs::create_directories(tok);
  std::ofstream(tok / "tokenizer.json") << tj.dump();
  const std::vector<std::string> base = {"--checkpoint", d.path().string(), "--tokenizer", tok.string(), "--prompt",
                                         "The fox", "--max-new-tokens", "12", "--temperature", "0", "--json"};
  auto run = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), base.begin(), base.end());
    const auto r = gen(extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(single_line_json(r.output));
  };
  const auto plain = magellano::data::Tokenizer::load(d.path()).encode("The fox", magellano::data::SpecialTokens::AsText);
  auto j = run({});
  std::vector<uint32_t> want_prompt{eot};
  want_prompt.insert(want_prompt.end(), plain.begin(), plain.end());
  EXPECT_EQ(j["prompt_ids"].get<std::vector<uint32_t>>(), want_prompt);
  EXPECT_EQ(run({"--no-template"})["prompt_ids"].get<std::vector<uint32_t>>(), plain);
  // No EOS known (the tokenizer folder has no config): the greedy run goes to the length limit.
  const auto ids = j["ids"].get<std::vector<int32_t>>();
  ASSERT_GE(ids.size(), 6u);
  // Stop at whichever of two ids comes first.
  std::ofstream(tok / "config.json") << nlohmann::json{{"eos_token_id", {ids[5], ids[2]}}}.dump();
  j = run({});
  size_t first = 0;
  while (ids[first] != ids[5] && ids[first] != ids[2]) ++first;
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), std::vector<int32_t>(ids.begin(), ids.begin() + first + 1));
  EXPECT_EQ(j["finish_reason"], "eos");
}

// --infill on a blank-infilling checkpoint (random weights; vocabulary 303 = the tokenizer's 300 +
// [MASK] 300, [START] 301, [END] 302): part A is the text's pieces encoded and joined by [MASK]s,
// each blank is filled, the printed text is the pieces with the spans between them, and every
// greedy span token equals the argmax of a full forward over A ++ [START] span ... with prefix |A|
// (after a blank that ended, the argmax is one of the ids that end a blank). A checkpoint not
// trained for infilling is refused.
TEST(GenerateCli, InfillFillsEachBlankAsTheFullForwardsArgmax) {
  MG_REQUIRE_CLI();
  TempDir d, causal;
  const nlohmann::json infill = {{"model", {{"vocab_size", 303}, {"layers", "MAM"}, {"attention", {{"heads", 2}}}}},
                                 {"train", {{"objective", "blank_infilling"}}}};
  write_checkpoint(d.path(), true, infill);
  const std::vector<std::string> pieces = {"The quick", " fox jumps over the", " dog."};
  const std::string text = pieces[0] + "[MASK]" + pieces[1] + "[MASK]" + pieces[2];
  auto r = gen({"--checkpoint", d.path().string(), "--infill", text, "--max-new-tokens", "4", "--temperature", "0",
                "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(single_line_json(r.output));
  const auto part_a = j["part_a"].get<std::vector<int32_t>>();
  const auto spans = j["spans"].get<std::vector<std::vector<int32_t>>>();
  const auto finish = j["finish_reasons"].get<std::vector<std::string>>();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(std::count(part_a.begin(), part_a.end(), 300), 2);
  EXPECT_EQ(j["text"], pieces[0] + j["span_texts"][0].get<std::string>() + pieces[1] +
                           j["span_texts"][1].get<std::string>() + pieces[2]);
  const auto model = magellano::train::load_model(d.path(), test_ctx()).model;
  magellano::autograd::NoGradScope no_grad;
  const int64_t V = 303;
  const auto P = static_cast<int32_t>(part_a.size());
  std::vector<int32_t> seq = part_a;
  for (size_t b = 0; b < spans.size(); ++b) {
    seq.push_back(301);
    EXPECT_LE(spans[b].size(), 4u);
    for (size_t k = 0; k <= spans[b].size(); ++k) {
      const auto L = static_cast<int64_t>(seq.size());
      const auto logits = model->forward(magellano::Tensor::from_host_i32(test_ctx(), magellano::Shape{1, L}, seq), nullptr, 0,
                                         magellano::Tensor::from_host_i32(test_ctx(), magellano::Shape{1}, {P}))
                              .logits.to_host();
      const float* last = &logits[(L - 1) * V];
      const auto argmax = static_cast<int32_t>(std::max_element(last, last + V) - last);
      if (k < spans[b].size()) {
        EXPECT_EQ(spans[b][k], argmax) << "blank " << b << ", token " << k;
        seq.push_back(spans[b][k]);
      } else if (finish[b] == "eos") {
        EXPECT_GE(argmax, 300) << "blank " << b << " ended on " << argmax;  // no end-of-text id in this tokenizer
      } else {
        EXPECT_EQ(spans[b].size(), 4u);
      }
    }
  }
  // Plain text output: the filled text on one line (raw bytes; --json replaced invalid UTF-8).
  r = run_on_device({"generate", "--checkpoint", d.path().string(), "--infill", text, "--max-new-tokens", "4",
                     "--temperature", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind(pieces[0], 0), 0u) << r.output;
  EXPECT_NE(r.output.find(pieces[1]), std::string::npos) << r.output;
  EXPECT_EQ(r.output.substr(r.output.size() - pieces[2].size() - 1), pieces[2] + "\n") << r.output;
  write_checkpoint(causal.path(), true, {{"model", {{"vocab_size", 303}}}});
  EXPECT_TRUE(fails_with_one_line(run_on_device({"generate", "--checkpoint", causal.path().string(), "--infill", text}), 1,
                                  "generate --infill: the checkpoint was trained with train.objective \"causal\", not blank_infilling"));
}
