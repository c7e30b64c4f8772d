// Fused attention (ops::attention) against the naive float64 softmax(scale·QKᵀ + mask)V with
// grouped-query heads (ref::attention), forward and the gradients of q, k and v: registered op
// cases (each runs in both kernel mappings: the device's under Ops/, the other one under
// OtherMapping/, since AttentionMapping::automatic follows ops::kernel_mapping; the cases with
// explicit tiles name their mapping); the two mappings and several tile sizes against each other
// at a longer length; bitwise determinism; that the recipe rejects deliberately broken results
// (a flipped mask, a scale off by 0.1%, one output element off by 1e-4); bad input.
// Cases: GQA ratios 1, 2, 4; head widths 32, 40, 64, 80, 96, 128; L = 1, 7, 33, 45, 100, 300;
// causal and not; a custom scale; large-magnitude scores (softmax nearly one-hot: the online
// max must keep exp() in range); prefix-LM prefix lengths per row (0, L, inside and across tiles,
// in every mapping; same tolerances: the prefix only changes which keys are summed). Also: which
// queries a changed key reaches under a prefix (exact), and a prefix ignored or one short is
// rejected. Perf size: B 8, L 2048, nH 16, nKV 4, d 64, causal.
// Tolerances (fp32 against float64):
//   forward rtol 2e-5, atol 2e-5. Each output is a convex combination of v (|v| ~ 1) with weights
//   from fp32 scores (d-term dot products, relative error ~d·2^-24 ≈ 4e-6 at d 64 on scores of
//   size ~1, the same absolute error in each exponent) and the online rescaling (one rounding per
//   key tile). (The worst errors per case were not recorded separately; every case passes.)
//   gradients rtol 1e-4, atol 1e-4: dS = P ∘ (dP - D) cancels (D is the P-weighted mean of dP),
//   and dk, dv sum over every query row of every query head of the group (up to 4 · 300 terms).
//   large-magnitude scores (|score| up to ~60): forward and gradients 2e-4 / 2e-4: a score's
//   absolute error grows with its size (~60 · 4e-6), and so does each probability's relative error.
//   reference vs finite differences rtol 1e-5, atol 1e-6 (float64, step 1e-6; smooth everywhere).
#include <gtest/gtest-spi.h>

#include <cmath>

#include "error_text.hpp"
#include "magellano/ops/attention.hpp"
#include "magellano/ops/elementwise.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  int64_t b, l, h, kvh, d;
  bool causal = true;
  float scale = 0.0f;      // 0: 1/sqrt(d)
  double magnitude = 1.0;  // q and k are drawn with this standard deviation
  ops::AttentionMapping mapping = ops::AttentionMapping::automatic;
  ops::AttentionTiles tiles = {}, backward_tiles = {};
  uint64_t seed = 300;
  std::vector<int32_t> prefix = {};  // (B) prefix lengths (prefix-LM); empty = none
};

const Tolerance kTol{.fwd_rtol = 2e-5, .fwd_atol = 2e-5, .grad_rtol = 1e-4, .grad_atol = 1e-4,
                     .fd_rtol = 1e-5, .fd_atol = 1e-6};
const Tolerance kLargeTol{.fwd_rtol = 2e-4, .fwd_atol = 2e-4, .grad_rtol = 2e-4, .grad_atol = 2e-4,
                          .fd_rtol = 1e-5, .fd_atol = 1e-6};

const char* mapping_name(ops::AttentionMapping m) {
  switch (m) {
    case ops::AttentionMapping::group_per_block: return "group-per-block";
    case ops::AttentionMapping::item_per_block: return "item-per-block";
    case ops::AttentionMapping::register_tiles: return "register-tiles";
    default: return "automatic";
  }
}

std::string tiles_name(const ops::AttentionTiles& t) {
  return "q" + std::to_string(t.block_q) + " k" + std::to_string(t.block_k) + " r" + std::to_string(t.rows) + " v" +
         std::to_string(t.vec);
}

std::string name_of(const Case& c) {
  std::string s = "attention B" + std::to_string(c.b) + " L" + std::to_string(c.l) + " H" + std::to_string(c.h) +
                  " KV" + std::to_string(c.kvh) + " d" + std::to_string(c.d);
  if (!c.causal) s += " non-causal";
  if (!c.prefix.empty()) {
    s += " prefix";
    for (int32_t p : c.prefix) s += " " + std::to_string(p);
  }
  if (c.scale > 0) s += " scale" + std::to_string(c.scale).substr(0, 4);
  if (c.magnitude != 1.0) s += " large-scores";
  if (c.mapping != ops::AttentionMapping::automatic) s += std::string(" ") + mapping_name(c.mapping);
  if (c.tiles.block_q || c.tiles.block_k || c.tiles.rows || c.tiles.vec) s += " fwd " + tiles_name(c.tiles);
  const auto& bt = c.backward_tiles;
  if (bt.block_q || bt.block_k || bt.rows || bt.vec) s += " bwd " + tiles_name(bt);
  return s;
}

ref::AttentionDims ref_dims(const Case& c) {
  return {c.b, c.l, c.h, c.kvh, c.d, c.scale > 0 ? double(c.scale) : 1.0 / std::sqrt(double(c.d)), c.causal,
          std::vector<int64_t>(c.prefix.begin(), c.prefix.end())};
}

ops::AttentionOptions options_of(const Case& c) {
  ops::AttentionOptions o;
  o.scale = c.scale;
  o.causal = c.causal;
  o.mapping = c.mapping;
  o.tiles = c.tiles;
  o.backward_tiles = c.backward_tiles;
  if (!c.prefix.empty()) o.prefix = Tensor::from_host_i32(test_ctx(), Shape{c.b}, c.prefix);
  return o;
}

// Inputs in the op's order {q, k, v}.
std::vector<Input> make_inputs(const Case& c) {
  const Shape qs{c.b, c.l, c.h, c.d}, ks{c.b, c.l, c.kvh, c.d};
  return {{qs, randn(qs.numel(), c.seed + 1, c.magnitude)},
          {ks, randn(ks.numel(), c.seed + 2, c.magnitude)},
          {ks, randn(ks.numel(), c.seed + 3)}};
}

CaseSpec attention_case(const Case& c) {
  return {name_of(c), [c] {
            const ref::AttentionDims d = ref_dims(c);
            OpCase oc;
            oc.inputs = make_inputs(c);
            oc.device = [c](const std::vector<Tensor>& t) { return ops::attention(t[0], t[1], t[2], options_of(c)); };
            oc.ref = [d](const std::vector<Vec>& x) { return ref::attention(d, x[0], x[1], x[2]); };
            oc.ref_grad = [d](const std::vector<Vec>& x, const Vec& dy) {
              return ref::attention_bwd(d, x[0], x[1], x[2], dy);
            };
            oc.tol = c.magnitude > 1.0 ? kLargeTol : kTol;
            oc.sizes = {{"B", c.b}, {"L", c.l}, {"nH", c.h}, {"nKV", c.kvh}, {"d", c.d}, {"causal", c.causal},
                        {"mapping", mapping_name(c.mapping)}};
            const ops::AttentionWork w = ops::attention_work(c.b, c.l, c.h, c.kvh, c.d, c.causal);
            oc.cost = {w.fwd_bytes, w.fwd_flops, w.bwd_bytes, w.bwd_flops};
            return oc;
          }};
}

using M = ops::AttentionMapping;

const RegisterOp reg{
    {"attention",
     {
         attention_case({2, 1, 4, 2, 32}),              // one position
         attention_case({1, 7, 2, 2, 32}),              // GQA ratio 1
         attention_case({2, 33, 4, 2, 64}),             // ratio 2, L just past a tile
         attention_case({1, 100, 4, 1, 80}),            // ratio 4, d 80
         attention_case({1, 33, 2, 1, 128}),            // d 128 (tiles halved to fit local memory)
         attention_case({1, 300, 2, 1, 32}),            // longer: many key tiles and query blocks
         attention_case({2, 33, 4, 1, 96, false}),      // non-causal, d 96
         attention_case({1, 7, 2, 2, 64, false}),       // non-causal, short
         attention_case({1, 33, 2, 2, 40, true, 0.3f}),  // a custom scale; d 40 (vectors of 8)
         attention_case({1, 50, 2, 1, 64, true, 0.0f, 4.0}),   // scores up to ~60
         attention_case({1, 45, 2, 2, 32, false, 0.0f, 4.0}),  // the same, non-causal
         // Explicit tiles: several rows per work-item, partial tiles everywhere, odd groupings.
         attention_case({.b = 1, .l = 45, .h = 4, .kvh = 2, .d = 24, .mapping = M::group_per_block,
                         .tiles = {.block_q = 16, .block_k = 8, .rows = 2, .vec = 2},
                         .backward_tiles = {.block_q = 8, .block_k = 16, .rows = 4, .vec = 2}}),
         attention_case({.b = 2, .l = 29, .h = 2, .kvh = 1, .d = 16, .causal = false, .mapping = M::item_per_block,
                         .tiles = {.block_q = 3, .block_k = 8, .vec = 8},
                         .backward_tiles = {.block_q = 24, .block_k = 8, .vec = 8}}),
         // Register tiles: streamed tiles of 24 (d 24, six column groups) and 20 (d 40, five),
         // explicit small tiles with partial blocks, d 128.
         attention_case({.b = 1, .l = 45, .h = 4, .kvh = 2, .d = 24, .mapping = M::register_tiles}),
         attention_case({.b = 1, .l = 50, .h = 2, .kvh = 1, .d = 40, .magnitude = 4.0, .mapping = M::register_tiles}),
         attention_case({.b = 2, .l = 70, .h = 4, .kvh = 1, .d = 64, .causal = false, .mapping = M::register_tiles,
                         .tiles = {.block_q = 16, .block_k = 8}, .backward_tiles = {.block_q = 8, .block_k = 16}}),
         attention_case({.b = 1, .l = 33, .h = 2, .kvh = 1, .d = 128, .mapping = M::register_tiles}),
         // Prefix-LM: per-row prefix lengths (0 = causal, L = bidirectional, one past the end
         // clamped, and lengths that end inside a query block / key tile, so the tiles the causal
         // mask skips must be processed), in every mapping.
         attention_case({.b = 3, .l = 33, .h = 4, .kvh = 2, .d = 32, .prefix = {13, 0, 33}}),
         attention_case({.b = 2, .l = 100, .h = 2, .kvh = 1, .d = 64, .prefix = {71, 1}}),
         attention_case({.b = 2, .l = 45, .h = 4, .kvh = 2, .d = 24, .mapping = M::group_per_block,
                         .tiles = {.block_q = 16, .block_k = 8, .rows = 2, .vec = 2},
                         .backward_tiles = {.block_q = 8, .block_k = 16, .rows = 4, .vec = 2}, .prefix = {30, 50}}),
         attention_case({.b = 2, .l = 70, .h = 4, .kvh = 1, .d = 32, .mapping = M::register_tiles,
                         .tiles = {.block_q = 16, .block_k = 8}, .backward_tiles = {.block_q = 8, .block_k = 16},
                         .prefix = {37, 9}}),
         attention_case({.b = 2, .l = 50, .h = 2, .kvh = 1, .d = 40, .magnitude = 4.0, .mapping = M::register_tiles,
                         .prefix = {26, 49}}),
     },
     attention_case({8, 2048, 16, 4, 64})}};  // a GQA training shape

std::vector<Tensor> upload_all(const std::vector<Input>& in, bool grad) {
  std::vector<Tensor> t;
  for (const auto& x : in) t.push_back(upload(x.shape, x.values, grad && x.differentiable));
  return t;
}

// The output and the three gradients of one forward + backward.
std::vector<std::vector<float>> run_once(const ops::AttentionOptions& o, std::vector<Tensor>& t, const Tensor& dy) {
  for (auto& x : t) x.zero_grad();
  Tensor y = ops::attention(t[0], t[1], t[2], o);
  std::vector<std::vector<float>> r{y.to_host()};
  magellano::autograd::backward(y, dy);
  for (auto& x : t) r.push_back(x.grad().to_host());
  return r;
}

// Failures check_op reports for a case whose device op is `op` (the reference is the case's).
std::vector<std::string> failures_of(const Case& c, const DeviceOp& op) {
  const OpCase oc = attention_case(c).build();
  testing::TestPartResultArray results;
  {
    testing::ScopedFakeTestPartResultReporter reporter(
        testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    check_op("broken attention", oc.inputs, op, oc.ref, oc.ref_grad, oc.tol);
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i) out.push_back(results.GetTestPartResult(i).message());
  magellano::autograd::clear_tape();
  return out;
}

bool mentions(const std::vector<std::string>& messages, const std::string& what) {
  for (const auto& m : messages)
    if (m.find(what) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(Attention, MappingsAndTilesAgreeAtALongerLength) {
  const Case c{2, 200, 4, 2, 64};
  auto t = upload_all(make_inputs(c), true);
  const Tensor dy = upload(Shape{c.b, c.l, c.h, c.d}, randn(c.b * c.l * c.h * c.d, 5));
  const auto base = run_once({.mapping = M::item_per_block}, t, dy);
  const std::vector<ops::AttentionOptions> others = {
      {.mapping = M::group_per_block},
      {.mapping = M::group_per_block, .tiles = {.block_q = 32, .block_k = 16, .rows = 2},
       .backward_tiles = {.block_q = 16, .block_k = 32, .rows = 2}},
      {.mapping = M::item_per_block, .tiles = {.block_q = 5, .block_k = 32}, .backward_tiles = {.block_q = 8, .block_k = 8}},
      {.mapping = M::register_tiles},
      {.mapping = M::register_tiles, .tiles = {.block_q = 32, .block_k = 16}, .backward_tiles = {.block_q = 16, .block_k = 8}},
  };
  for (const auto& o : others) {
    const auto other = run_once(o, t, dy);
    for (size_t i = 0; i < base.size(); ++i)  // the same sums in other groupings
      expect_close(other[i], to_f64(base[i]), 1e-4, 1e-4, std::string(mapping_name(o.mapping)) +
                                                              (i ? " gradient " + std::to_string(i - 1) : " output"));
  }
  std::vector<Vec> values;
  for (auto& x : make_inputs(c)) values.push_back(x.values);
  expect_close(base[0], ref::attention(ref_dims(c), values[0], values[1], values[2]), kTol.fwd_rtol, kTol.fwd_atol,
               "L = 200 forward vs float64");
}

TEST(Attention, ForwardAndBackwardAreBitwiseDeterministic) {
  for (auto m : {M::item_per_block, M::group_per_block, M::register_tiles}) {
    const Case c{2, 70, 4, 1, 32};
    auto t = upload_all(make_inputs(c), true);
    const Tensor dy = upload(Shape{c.b, c.l, c.h, c.d}, randn(c.b * c.l * c.h * c.d, 8));
    const auto a = run_once({.mapping = m}, t, dy), b = run_once({.mapping = m}, t, dy);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << mapping_name(m) << " tensor " << i;
  }
}

// The recipe must be able to fail: broken variants of the op are rejected by check_op.
TEST(Attention, TheCheckRejectsDeliberatelyBrokenResults) {
  const Case c{1, 20, 4, 2, 32};
  // The causal mask left out: the forward differs.
  auto no_mask = failures_of(c, [](const std::vector<Tensor>& t) {
    return ops::attention(t[0], t[1], t[2], {.causal = false});
  });
  EXPECT_TRUE(mentions(no_mask, "forward")) << no_mask.size() << " failures";
  // A scale 0.1% off.
  auto off_scale = failures_of(c, [c](const std::vector<Tensor>& t) {
    return ops::attention(t[0], t[1], t[2], {.scale = 1.001f / std::sqrt(float(c.d))});
  });
  EXPECT_TRUE(mentions(off_scale, "forward")) << off_scale.size() << " failures";
  // One output element off by 1e-4 (gradients unchanged: only the forward may fail).
  auto one_element = failures_of(c, [c](const std::vector<Tensor>& t) {
    std::vector<float> bump(c.b * c.l * c.h * c.d, 0.0f);
    bump[bump.size() / 2] = 1e-4f;
    return ops::add(ops::attention(t[0], t[1], t[2]), Tensor::from_host(test_ctx(), t[0].shape(), bump));
  });
  EXPECT_TRUE(mentions(one_element, "forward: 1 of")) << one_element.size() << " failures";
  EXPECT_FALSE(mentions(one_element, "gradient"));
  // Prefix-LM with the prefix ignored (plain causal), and with the prefix one token short.
  Case p{2, 21, 2, 1, 32};
  p.prefix = {12, 5};
  auto no_prefix = failures_of(p, [](const std::vector<Tensor>& t) { return ops::attention(t[0], t[1], t[2]); });
  EXPECT_TRUE(mentions(no_prefix, "forward")) << no_prefix.size() << " failures";
  auto short_prefix = failures_of(p, [](const std::vector<Tensor>& t) {
    return ops::attention(t[0], t[1], t[2], {.prefix = Tensor::from_host_i32(test_ctx(), Shape{2}, {11, 5})});
  });
  EXPECT_TRUE(mentions(short_prefix, "forward")) << short_prefix.size() << " failures";
}

// Prefix-LM's visibility, by perturbation: with prefix P, changing key/value position s changes
// query t's output iff s <= t or s < P; a change to a later suffix token never reaches t.
TEST(Attention, PrefixRowsSeeTheWholePrefixAndSuffixRowsStayCausal) {
  const int64_t L = 19, P = 11;
  for (auto m : {M::item_per_block, M::group_per_block, M::register_tiles}) {
    const Case c{1, L, 2, 1, 32};
    const auto in = make_inputs(c);
    const ops::AttentionOptions o{.mapping = m, .prefix = Tensor::from_host_i32(test_ctx(), Shape{1}, {int32_t(P)})};
    auto out_with = [&](int64_t changed) {  // output with position `changed`'s key and value altered
      Vec k = in[1].values, v = in[2].values;
      for (int64_t e = 0; e < 32; ++e) k[changed * 32 + e] += 0.5, v[changed * 32 + e] -= 0.5;  // (1, L, 1, 32)
      return ops::attention(upload(in[0].shape, in[0].values), upload(in[1].shape, k), upload(in[2].shape, v), o)
          .to_host();
    };
    const auto base = ops::attention(upload(in[0].shape, in[0].values), upload(in[1].shape, in[1].values),
                                     upload(in[2].shape, in[2].values), o).to_host();
    for (int64_t s : {int64_t(0), P - 1, P, L - 1}) {
      const auto y = out_with(s);
      for (int64_t t = 0; t < L; ++t) {
        bool changed = false;
        for (int64_t i = 0; i < 2 * 32; ++i) changed |= y[t * 64 + i] != base[t * 64 + i];
        EXPECT_EQ(changed, s <= t || s < P) << mapping_name(m) << ": query " << t << ", key " << s;
      }
    }
  }
}

TEST(Attention, BadInputIsOneClearError) {
  using mgtest::expect_error;
  auto z = [](Shape s) { return upload(s, Vec(s.numel(), 0.5)); };
  const Tensor q = z(Shape{1, 4, 6, 32}), k = z(Shape{1, 4, 2, 32});
  expect_error([&] { ops::attention(q, z(Shape{1, 4, 4, 32}), z(Shape{1, 4, 4, 32})); },
               "the 4 kv heads must divide the 6 query heads");
  expect_error([&] { ops::attention(q, k, z(Shape{1, 4, 3, 32})); }, "k and v must have the same shape");
  expect_error([&] { ops::attention(q, z(Shape{1, 5, 2, 32}), z(Shape{1, 5, 2, 32})); },
               "must agree in B, L and d");
  expect_error([&] { ops::attention(z(Shape{1, 4, 2, 30}), z(Shape{1, 4, 2, 30}), z(Shape{1, 4, 2, 30})); },
               "head width d = 30 is not supported");
  expect_error([&] { ops::attention(q.view(Shape{4, 6, 32}), k, k); }, "q must be (B, L, heads, d)");
  const Tensor k16 = Tensor::from_host(test_ctx(), Shape{1, 4, 2, 32}, std::vector<float>(256, 0.5f), DType::f16);
  expect_error([&] { ops::attention(q, k16, k16); }, "'k' must be f32");
  expect_error([&] { ops::attention(q, k, k, {.scale = -1.0f}); }, "scale must be a finite positive number");
  expect_error([&] { ops::attention(q, k, k, {.tiles = {.vec = 3}}); }, "vector width must be 1, 2, 4, 8 or 16");
  expect_error([&] {
    ops::attention(q, k, k, {.mapping = M::group_per_block, .tiles = {.block_q = 16, .rows = 3}});
  }, "3 rows per work-item must divide the 16 rows");
  expect_error([&] { ops::attention(q, k, k, {.mapping = M::register_tiles, .tiles = {.rows = 2}}); },
               "register tiles hold 4 rows per work-item");
  expect_error([&] { ops::attention(q, k, k, {.mapping = M::register_tiles, .tiles = {.block_q = 10}}); },
               "multiples of 4");
  expect_error([&] { ops::attention(q, k, k, {.mapping = M::register_tiles, .tiles = {.block_k = 12}}); },
               "the streamed tile's 12 columns must divide the head width 32");
  const Tensor p2 = Tensor::from_host_i32(test_ctx(), Shape{2}, {1, 2});
  expect_error([&] { ops::attention(q, k, k, {.prefix = p2}); }, "prefix lengths must be (B) = (1) i32");
  const Tensor p1 = Tensor::from_host_i32(test_ctx(), Shape{1}, {2});
  expect_error([&] { ops::attention(q, k, k, {.causal = false, .prefix = p1}); },
               "prefix lengths only apply to causal attention");
}
