// `bench generate`: decoding speed of a config's model (random weights) with the recurrent
// state, at two context positions and two batch sizes.
//
// For each position P (default 100 and 8000): one random prompt of P tokens is prefilled by
// Model::prefill at batch 1 (timed once, reported as prefill_s); each batch size B (default 1
// and 8) then prefills B copies of it at once, so every row holds the whole state (Mamba states
// and attention's cached keys and values). Then `tokens` decode iterations per position are timed one by one, the
// positions taking turns (so a change in the machine's load affects them alike), each exactly
// what `magellano generate` does per token: the device sampler (temperature 1, top-k 50,
// top-p 0.9, repetition penalty 1.1), the read of the B ids, and Model::step on them.
// tokens/s = B / median iteration time. GFLOP/s counts 2 · (weights multiplied per token) · B
// per iteration (the active parameters, less an untied embedding: its lookup is no product).
// Without attention blocks the cost per token does not grow with the position; with them it grows
// only by the attention over the cached positions. Each result at a position other than the
// first reports its ratio to the first position's tokens/s at the same batch (extra.vs_first).
// Options: --config FILE (default configs/tiny.json), --positions 100,8000, --batches 1,8,
// --tokens 16, --base fp32|int4 (int4: the block Linears stored int4 in groups of 128, as a model
// read from `quantize --format int4` output runs; the embedding and head stay fp32).
// MAGELLANO_FUSED_DECODE=0 times the unfused decode step (nn/decode_path.hpp); MAGELLANO_PROFILE=1
// adds the device time and launch count per kernel of one more token (profile_one_token).
#include <algorithm>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>

#include "bench.hpp"
#include "magellano/autograd/tape.hpp"
#include "magellano/generate/generator.hpp"
#include "magellano/nn/decode_path.hpp"
#include "magellano/ops/decode_gemv.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/model_size.hpp"

namespace magellano::bench {
namespace {

// A batched state with every row a copy of `one` (batch 1).
// The state of `batch` rows that each read `prompt`: one parallel prefill of the (batch, P)
// prompt, so every part of the state (Mamba states, attention's cached keys and values) is there.
nn::DecodeState batched_state(Context& ctx, const nn::Model& model, const std::vector<int32_t>& prompt, int64_t batch) {
  std::vector<int32_t> ids;
  for (int64_t b = 0; b < batch; ++b) ids.insert(ids.end(), prompt.begin(), prompt.end());
  nn::DecodeState s;
  (void)model.prefill(Tensor::from_host_i32(ctx, Shape{batch, int64_t(prompt.size())}, ids), s);
  return s;
}

std::vector<Result> run_generate(Context& ctx, const Peaks&, const Options& opts) {
  const std::string config = opts.has("config") ? opts.str("config") : find_config("tiny.json").string();
  const auto cfg = train::load_config(config);
  const auto positions = list_option(opts, "positions", "100,8000");
  const auto batches = list_option(opts, "batches", "1,8");
  const int64_t tokens = opts.integer("tokens");
  if (tokens < 1) throw Error("--tokens must be >= 1.");
  const int64_t V = cfg.model.vocab_size;
  nn::ModelSpec spec = train::model_spec(cfg.model);
  const std::string base = opts.str("base");
  if (base != "fp32" && base != "int4") throw Error("--base must be fp32 or int4, got '" + base + "'.");
  if (base == "int4") spec.base_storage = nn::WeightStorage::int4;
  nn::Model model(ctx, spec, cfg.train.seed);
  const auto counts = train::count_params(cfg.model);
  const double mults = double(counts.active_per_token - (cfg.model.tie_embeddings ? 0 : counts.embedding));
  generate::SamplingParams sp;
  sp.temperature = 1.0f, sp.top_k = 50, sp.top_p = 0.9f, sp.repetition_penalty = 1.1f, sp.seed = 1;

  // Prefill each position once at batch 1.
  struct Prefilled {
    int64_t position;
    std::vector<int32_t> prompt;
    nn::DecodeState state;
    Tensor last_logits;  // (1, V)
    double seconds;
  };
  std::vector<Prefilled> pre;
  std::mt19937_64 rng(7);
  for (int64_t P : positions) {
    Prefilled p{P, std::vector<int32_t>(P), {}, {}, 0};
    for (auto& id : p.prompt) id = int32_t(rng() % uint64_t(V));
    const auto t0 = std::chrono::steady_clock::now();
    p.last_logits = model.prefill(Tensor::from_host_i32(ctx, Shape{1, P}, p.prompt), p.state);
    ctx.finish();
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    pre.push_back(std::move(p));
  }

  std::vector<Result> out;
  autograd::NoGradScope no_grad;
  for (int64_t B : batches) {
    // One decoder per position, each with its own batched state, logits, sampler and step.
    struct Decoder {
      nn::DecodeState state;
      Tensor logits;
      std::unique_ptr<generate::Sampler> sampler;
      int64_t step = 0;
      std::vector<double> times;
    };
    std::vector<Decoder> dec;
    for (const auto& p : pre) {
      Decoder d{batched_state(ctx, model, p.prompt, B), Tensor::empty(ctx, Shape{B, V}),
                std::make_unique<generate::Sampler>(ctx, B, V, sp, std::vector<std::vector<int32_t>>(B, p.prompt)), 0, {}};
      for (int64_t b = 0; b < B; ++b) ops::copy_into(p.last_logits, d.logits.narrow_rows(b, b + 1));
      dec.push_back(std::move(d));
    }
    auto iteration = [&](Decoder& d) {  // what `magellano generate` does per token
      const Tensor ids = d.sampler->sample(d.logits, d.step++);
      (void)ids.to_host_i32();
      d.logits = model.step(ids, d.state);
      ctx.finish();
    };
    for (auto& d : dec)
      for (int w = 0; w < 2; ++w) iteration(d);  // warm-up: kernels built, buffers allocated
    // The positions take turns, one token each, so a change in the machine's load hits all
    // of them alike.
    for (int64_t i = 0; i < tokens; ++i)
      for (auto& d : dec) {
        const auto t0 = std::chrono::steady_clock::now();
        iteration(d);
        d.times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    for (size_t pi = 0; pi < pre.size(); ++pi) {
      auto& d = dec[pi];
      const bool fused = nn::fused_decode() && B <= ops::kDecodeGemvRows;
      std::sort(d.times.begin(), d.times.end());
      const double s = d.times[d.times.size() / 2];
      // The sampler alone on the same logits: its share of an iteration.
      const double sample_s = median_seconds(ctx, static_cast<int>(std::min<int64_t>(tokens, 8)), [&] {
        (void)d.sampler->sample(d.logits, d.step++).to_host_i32();
      });
      Result r;
      r.name = "generate";
      r.sizes = {{"config", std::filesystem::path(config).stem().string()}, {"base", base}, {"batch", B},
                 {"position", pre[pi].position}, {"vocab", V}};
      r.median_s = s;
      r.repeats = static_cast<int>(tokens);
      r.tokens_per_s = double(B) / s;
      r.gflops = 2.0 * mults * double(B) / s / 1e9;
      r.extra = {{"ms_per_token_iteration", s * 1e3}, {"sampler_ms", sample_s * 1e3},
                 {"prefill_s", pre[pi].seconds}, {"prefill_tokens_per_s", double(pre[pi].position) / pre[pi].seconds},
                 {"sampling", {{"temperature", 1.0}, {"top_k", 50}, {"top_p", 0.9}, {"repetition_penalty", 1.1}}},
                 {"sampler_path", d.sampler->fast() ? "fast" : "full"}, {"sampler_segments", d.sampler->segments()},
                 {"decode_path", fused ? "fused" : "unfused"},
                 {"host_reads_per_token", fused ? "B int32 ids" : "B int32 ids, plus X+1 int32 routing offsets per MoE block"}};
      if (ctx.profiler().enabled()) {  // MAGELLANO_PROFILE=1: device time and launches per kernel of one more token
        ctx.profiler().discard();
        iteration(d);
        nlohmann::json prof = nlohmann::json::array();
        int64_t launches = 0;
        for (const auto& e : ctx.profiler().report()) {
          prof.push_back({{"kernel", e.name}, {"calls", e.calls}, {"device_ms", e.seconds * 1e3}});
          launches += e.calls;
        }
        r.extra["profile_one_token"] = prof;
        r.extra["launches_one_token"] = launches;
      }
      if (pi > 0) r.extra["vs_first"] = r.tokens_per_s / out[out.size() - pi].tokens_per_s;
      out.push_back(r);
    }
  }
  return out;
}

RegisterBench reg{{"generate",
                   "Decoding tokens/s with the recurrent state and the device sampler, by position and batch",
                   {{"config", Key::text, "", "model config (default: configs/tiny.json)"},
                    {"positions", Key::text, "100,8000", "context positions P to decode at, comma-separated"},
                    {"batches", Key::text, "1,8", "batch sizes B, comma-separated"},
                    {"tokens", Key::integer, "16", "timed decode iterations per position and batch"},
                    {"base", Key::text, "fp32", "block Linear weights: fp32 or int4 (groups of 128)"}},
                   run_generate}};

}  // namespace
}  // namespace magellano::bench
