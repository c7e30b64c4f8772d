// `bench attention`: the fused attention (ops::attention), forward and forward + backward, at each
// length of --l (default 512, 2048, 8192, 32768), in GFLOP/s of the attention FLOPs
// (ops::attention_work: forward 4·B·nH·L²·d, half of it when causal; backward 2.5× the forward;
// a multiply-add counts 2), next to the device's measured fp32 GEMM peak (pct_of_peak; the goal on
// the H100 is 35% at L >= 2048, fwd + bwd). Options: --b --h --kv --d (defaults 8, 16, 4, 64),
// --l a comma-separated list, --causal 1|0, --mapping automatic|group|item|tiles, tile knobs --block-q
// --block-k --rows --vec and --bwd-block-q --bwd-block-k --bwd-rows (0: the mapping's).
// MAGELLANO_PROFILE=1 adds the device time per kernel of one forward + backward.
#include <cmath>
#include <random>
#include <sstream>

#include "bench.hpp"
#include "magellano/ops/attention.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

std::vector<int64_t> lengths_option(const Options& opts) {
  std::vector<int64_t> out;
  std::stringstream ss(opts.str("l"));
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used != item.size() || item.empty() || v < 1 || v > (int64_t(1) << 20))
      throw Error("--l: '" + item + "' is not a length in [1, 2^20]; give a comma-separated list, e.g. 512,2048.");
    out.push_back(v);
  }
  if (out.empty()) throw Error("--l: give at least one length, e.g. 512,2048.");
  return out;
}

ops::AttentionMapping mapping_option(const Options& opts) {
  const std::string m = opts.str("mapping");
  if (m == "automatic") return ops::AttentionMapping::automatic;
  if (m == "group") return ops::AttentionMapping::group_per_block;
  if (m == "item") return ops::AttentionMapping::item_per_block;
  if (m == "tiles") return ops::AttentionMapping::register_tiles;
  throw Error("--mapping: unknown value '" + m + "'; use automatic, group, item or tiles.");
}

std::vector<float> rnd(int64_t n, std::mt19937& gen) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

std::vector<Result> run_attention(Context& ctx, const Peaks&, const Options& opts) {
  const int repeats = repeats_option(opts, 3);
  const int64_t b = integer_in(opts, "b", 1, 1 << 16), h = integer_in(opts, "h", 1, 4096),
                kv = integer_in(opts, "kv", 1, 4096), d = integer_in(opts, "d", 8, 256);
  if (h % kv) throw Error("--kv: " + std::to_string(kv) + " kv heads must divide --h " + std::to_string(h) + ".");
  const bool causal = integer_in(opts, "causal", 0, 1) == 1;
  ops::AttentionOptions o;
  o.causal = causal;
  o.mapping = mapping_option(opts);
  auto knob = [&](const char* key) { return static_cast<int>(integer_in(opts, key, 0, 4096)); };
  o.tiles = {knob("block-q"), knob("block-k"), knob("rows"), knob("vec")};
  o.backward_tiles = {knob("bwd-block-q"), knob("bwd-block-k"), knob("bwd-rows"), 0};
  std::vector<Result> out;
  for (int64_t l : lengths_option(opts)) {
    std::mt19937 gen(1);
    const Shape qs{b, l, h, d}, ks{b, l, kv, d};
    Tensor q = Tensor::from_host(ctx, qs, rnd(qs.numel(), gen)), k = Tensor::from_host(ctx, ks, rnd(ks.numel(), gen)),
           v = Tensor::from_host(ctx, ks, rnd(ks.numel(), gen));
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
    const Tensor dy = Tensor::from_host(ctx, qs, rnd(qs.numel(), gen));
    const double s_fwd = median_seconds(ctx, repeats, [&] {
      autograd::NoGradScope no_grad;
      ops::attention(q, k, v, o);
    });
    const double s_all = median_seconds(ctx, repeats, [&] {
      for (Tensor* t : {&q, &k, &v}) t->zero_grad();
      autograd::backward(ops::attention(q, k, v, o), dy);
    });
    if (!std::isfinite(k.grad().to_host()[0])) throw Error("attention benchmark: non-finite gradient");
    const ops::AttentionWork w = ops::attention_work(b, l, h, kv, d, causal);
    const nlohmann::json sizes = {{"B", b}, {"L", l}, {"nH", h}, {"nKV", kv}, {"d", d}, {"causal", causal},
                                  {"mapping", opts.str("mapping")}};
    auto result = [&](const char* name, double seconds, double flops, double bytes) {
      Result r;
      r.name = name;
      r.sizes = sizes;
      r.median_s = seconds;
      r.repeats = repeats;
      r.gflops = flops / seconds / 1e9;
      r.extra = {{"flops", flops}, {"min_bytes", bytes}};
      return r;
    };
    out.push_back(result("attention_fwd", s_fwd, w.fwd_flops, w.fwd_bytes));
    Result all = result("attention_fwd_bwd", s_all, w.fwd_flops + w.bwd_flops, w.fwd_bytes + w.bwd_bytes);
    if (ctx.profiler().enabled()) {  // MAGELLANO_PROFILE=1: device time per kernel of one more fwd + bwd
      ctx.profiler().discard();
      for (Tensor* t : {&q, &k, &v}) t->zero_grad();
      autograd::backward(ops::attention(q, k, v, o), dy);
      nlohmann::json prof = nlohmann::json::array();
      for (const auto& e : ctx.profiler().report())
        prof.push_back({{"kernel", e.name}, {"calls", e.calls}, {"device_ms", e.seconds * 1e3}});
      all.extra["profile_one_step"] = prof;
    }
    out.push_back(all);
  }
  return out;
}

RegisterBench reg{{"attention", "fused attention forward and forward + backward (GFLOP/s vs the GEMM peak)",
                   {{"b", Key::integer, "8", "batch rows"},
                    {"l", Key::text, "512,2048,8192,32768", "sequence lengths, comma-separated"},
                    {"h", Key::integer, "16", "query heads"},
                    {"kv", Key::integer, "4", "kv heads (divides --h)"},
                    {"d", Key::integer, "64", "head width"},
                    {"causal", Key::integer, "1", "1: causal mask, 0: none"},
                    {"mapping", Key::text, "automatic", "automatic, group or tiles (GPUs), item (CPUs)"},
                    {"block-q", Key::integer, "0", "forward: query rows per block (0: default)"},
                    {"block-k", Key::integer, "0", "forward: keys per tile (0: default)"},
                    {"rows", Key::integer, "0", "forward: rows per work-item (0: default)"},
                    {"vec", Key::integer, "0", "vector width, every kernel (0: default)"},
                    {"bwd-block-q", Key::integer, "0", "backward: query rows per block / tile (0: default)"},
                    {"bwd-block-k", Key::integer, "0", "backward: keys per tile / block (0: default)"},
                    {"bwd-rows", Key::integer, "0", "backward: rows per work-item (0: default)"}},
                   run_attention}};

}  // namespace
}  // namespace magellano::bench
