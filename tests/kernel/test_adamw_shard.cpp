// ZeRO stage 1 in one process: AdamW sharded over S optimizers (optim::AdamWConfig::shard /
// shards), each on its own copy of the same parameters with the same gradients, against one
// unsharded AdamW. Between steps the owners' ranges are copied into every copy, as
// train::ZeroShard::share_parameters does over MPI. Compared bit for bit (the same kernels,
// scalars and stochastic-rounding bits per element, so no tolerance): the parameters after 12
// steps with clipping and a gradient scale, and the moments (every share's owned_state()
// concatenated, through state_st(full), against state_st()), for fp32 and int8 moments, device
// and host (paged) placement, f32 and f16 (stochastically rounded) parameters, 2, 3 and 7
// shards over a pack of several chunks whose cuts fall inside chunks (some shards own nothing
// of a chunk). Before every step each copy's parameters outside its share are poisoned (NaN):
// a sharded step that read or wrote them would show. A loaded checkpoint gives every share its
// part (also for another shard count). A broken exchange is caught: the owners' ranges taken
// from the split of another shard count (S + 1), so some updated elements are taken from a
// rank that did not update them.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "harness.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/st_dtype.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/optim/shard.hpp"
#include "temp_dir.hpp"

using namespace mgtest;
namespace optim = magellano::optim;
using magellano::DType;

namespace {

struct Spec {
  std::string name;
  Shape shape;
  bool decay;
};
// Odd sizes, both weight-decay groups, several chunks of 4096 f32 elements.
const std::vector<Spec> kSpecs = {{"a.weight", Shape{37, 53}, true}, {"a.bias", Shape{101}, false},
                                  {"b.weight", Shape{3, 5, 7}, true}, {"c.weight", Shape{257, 3}, true},
                                  {"c.norm", Shape{999}, false},      {"big.weight", Shape{67, 97}, true},
                                  {"d.A_log", Shape{13, 17}, false}};

std::vector<optim::Parameter> make_params(DType dtype) {
  std::vector<optim::Parameter> out;
  for (size_t i = 0; i < kSpecs.size(); ++i) {
    Tensor t = Tensor::from_host(test_ctx(), kSpecs[i].shape, to_f32(randn(kSpecs[i].shape.numel(), 40 + i, 0.5)),
                                 dtype, magellano::MemCategory::parameters);
    t.set_requires_grad(true).set_name(kSpecs[i].name);
    out.push_back({kSpecs[i].name, t, kSpecs[i].decay});
  }
  return out;
}

struct ShardSetup {
  optim::StateFormat states;
  optim::StatePlacement where;
  DType dtype;
};

optim::AdamWConfig config(const ShardSetup& s, int shard, int shards) {
  optim::AdamWConfig c;
  c.weight_decay = 0.1f;
  c.max_chunk_bytes = 16 * 1024 / dtype_size(s.dtype);  // 4096 elements per chunk either dtype
  c.states = s.states;
  c.offload = s.where;
  c.page_elements = 512;  // several pages per share
  c.stochastic_rounding = true;
  c.shard = shard;
  c.shards = shards;
  return c;
}

// The same gradients (exact in fp16) into every optimizer's pack.
void set_grads(optim::AdamW& opt, int step) {
  opt.zero_grad();
  size_t i = 0;
  for (const auto& pp : opt.pack().params()) {
    const auto g = to_f32(randn(pp.param.tensor.numel(), 1000 + step * 31 + i, 0.1 * (1.0 + 0.3 * double(i))));
    ++i;
    if (pp.param.tensor.dtype() == DType::f16) {
      std::vector<uint16_t> h(g.size());
      for (size_t k = 0; k < g.size(); ++k) h[k] = magellano::io::f32_to_f16(g[k]);
      pp.param.tensor.grad().copy_from_host(h.data(), h.size() * 2);
    } else {
      pp.param.tensor.grad().copy_from_host(g.data(), g.size() * 4);
    }
  }
}

// The raw bytes of chunk k's parameters.
std::vector<uint8_t> param_bytes(const optim::AdamW& opt, size_t k) {
  const Tensor& p = opt.pack().chunks()[k].params;
  std::vector<uint8_t> out(size_t(p.nbytes()));
  if (p.dtype() == DType::f16) {  // f16 -> f32 -> f16 gives the stored bits back
    const auto v = p.to_host();
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = magellano::io::f32_to_f16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  } else {
    const auto v = p.to_host();
    std::memcpy(out.data(), v.data(), out.size());
  }
  return out;
}

void set_param_bytes(const optim::AdamW& opt, size_t k, const std::vector<uint8_t>& bytes) {
  Tensor p = opt.pack().chunks()[k].params;
  p.copy_from_host(bytes.data(), bytes.size());
}

// Every element outside the share of `opt` set to NaN (f16: 0x7e00).
void poison_outside_share(const optim::AdamW& opt) {
  for (size_t k = 0; k < opt.pack().chunks().size(); ++k) {
    auto bytes = param_bytes(opt, k);
    const uint64_t es = dtype_size(opt.pack().chunks()[k].dtype());
    const optim::ElementRange r = opt.owned(k);
    for (int64_t i = 0; i < opt.pack().chunks()[k].numel; ++i) {
      if (i >= r.begin && i < r.end) continue;
      if (es == 2) {
        const uint16_t nan = 0x7e00;
        std::memcpy(bytes.data() + i * 2, &nan, 2);
      } else {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::memcpy(bytes.data() + i * 4, &nan, 4);
      }
    }
    set_param_bytes(opt, k, bytes);
  }
}

enum class Break { none, wrong_ranges };

// The chunks' parameter bytes each share computes, composed from the owners' ranges.
std::vector<std::vector<uint8_t>> compose(const std::vector<std::unique_ptr<optim::AdamW>>& shards,
                                         Break broken = Break::none) {
  std::vector<std::vector<uint8_t>> out;
  const int S = int(shards.size());
  for (size_t k = 0; k < shards[0]->pack().chunks().size(); ++k) {
    out.push_back(param_bytes(*shards[0], k));
    const uint64_t es = dtype_size(shards[0]->pack().chunks()[k].dtype());
    for (int i = 0; i < S; ++i) {
      const auto& s = shards[size_t(i)];
      const auto mine = param_bytes(*s, k);
      const optim::ElementRange r =
          broken == Break::wrong_ranges ? optim::shard_ranges(s->pack(), i, S + 1)[k] : s->owned(k);
      std::memcpy(out.back().data() + r.begin * es, mine.data() + r.begin * es, size_t(r.size()) * es);
    }
  }
  return out;
}

// The state entries of the shards, gathered as train::ZeroShard::gather_state does.
std::vector<std::pair<std::string, magellano::io::StTensor>> gathered_state(
    const std::vector<std::unique_ptr<optim::AdamW>>& shards) {
  optim::AdamW::StateArrays full = shards[0]->owned_state();
  for (size_t s = 1; s < shards.size(); ++s) {
    const auto part = shards[s]->owned_state();
    for (size_t k = 0; k < full.size(); ++k)
      for (size_t a = 0; a < full[k].size(); ++a) full[k][a].insert(full[k][a].end(), part[k][a].begin(), part[k][a].end());
  }
  return shards[0]->state_st(full);
}

size_t count_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t d = a.size() != b.size() ? 1 : 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d += a[i] != b[i];
  return d;
}

// Bytes that differ between the sharded run (S shards) and the unsharded one after `steps`
// steps: parameters, then moments.
std::pair<size_t, size_t> run_sharded(const ShardSetup& setup, int S, int steps, Break broken = Break::none) {
  auto ref_params = make_params(setup.dtype);
  optim::AdamW ref(test_ctx(), ref_params, config(setup, 0, 1));
  std::vector<std::vector<optim::Parameter>> copies;
  std::vector<std::unique_ptr<optim::AdamW>> shards;
  for (int s = 0; s < S; ++s) {
    copies.push_back(make_params(setup.dtype));
    shards.push_back(std::make_unique<optim::AdamW>(test_ctx(), copies.back(), config(setup, s, S)));
  }
  EXPECT_GE(ref.pack().chunks().size(), 3u);
  for (int t = 0; t < steps; ++t) {
    const float lr = 1e-2f / float(1 + t % 5);
    set_grads(ref, t);
    ref.step(lr, 1.0f, 0.5f);
    for (auto& s : shards) {
      set_grads(*s, t);
      poison_outside_share(*s);
      s->step(lr, 1.0f, 0.5f);
    }
    const auto shared = compose(shards, broken);  // share_parameters
    for (auto& s : shards)
      for (size_t k = 0; k < shared.size(); ++k) set_param_bytes(*s, k, shared[k]);
  }
  size_t dp = 0, dm = 0;
  for (size_t k = 0; k < ref.pack().chunks().size(); ++k) {
    const auto want = param_bytes(ref, k);
    for (const auto& s : shards) dp += count_diff(param_bytes(*s, k), want);  // every copy
  }
  const auto want = ref.state_st(), got = gathered_state(shards);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    EXPECT_EQ(got[i].first, want[i].first);
    dm += count_diff(got[i].second.bytes, want[i].second.bytes);
  }
  return {dp, dm};
}

const ShardSetup kSetups[] = {
    {optim::StateFormat::fp32, optim::StatePlacement::device, DType::f32},
    {optim::StateFormat::int8, optim::StatePlacement::device, DType::f32},
    {optim::StateFormat::fp32, optim::StatePlacement::host, DType::f16},
    {optim::StateFormat::int8, optim::StatePlacement::host, DType::f16},
    {optim::StateFormat::fp32, optim::StatePlacement::device, DType::f16},
};

}  // namespace

TEST(AdamWShard, ShardsEqualTheUnshardedOptimizerBitForBit) {
  for (const ShardSetup& s : kSetups)
    for (int S : {2, 3, 7}) {
      const auto [dp, dm] = run_sharded(s, S, 12);
      EXPECT_EQ(dp, 0u) << "parameters, setup " << int(s.states) << int(s.where) << magellano::to_string(s.dtype) << ", " << S << " shards";
      EXPECT_EQ(dm, 0u) << "moments, setup " << int(s.states) << int(s.where) << magellano::to_string(s.dtype) << ", " << S << " shards";
    }
}

TEST(AdamWShard, AnExchangeWithTheWrongOwnersIsCaught) {
  const auto [dp, dm] = run_sharded(kSetups[0], 3, 3, Break::wrong_ranges);
  std::printf("  wrong owners: %zu parameter bytes differ\n", dp);
  EXPECT_GT(dp, 0u);
}

// Each share's moment memory is its range's: the shares add up to the unsharded optimizer's.
TEST(AdamWShard, SharesOfMomentMemoryAddUp) {
  for (optim::StateFormat f : {optim::StateFormat::fp32, optim::StateFormat::int8}) {
    const ShardSetup s{f, optim::StatePlacement::host, DType::f32};
    auto p = make_params(DType::f32);
    const uint64_t whole = optim::AdamW(test_ctx(), p, config(s, 0, 1)).host_state_bytes();
    uint64_t sum = 0, largest = 0;
    for (int r = 0; r < 3; ++r) {
      auto q = make_params(DType::f32);
      const uint64_t b = optim::AdamW(test_ctx(), q, config(s, r, 3)).host_state_bytes();
      sum += b;
      largest = std::max(largest, b);
    }
    EXPECT_EQ(sum, whole);
    EXPECT_LT(double(largest), double(whole) / 3 * 1.2);  // balanced within a block or two
  }
}

// An unsharded checkpoint loads into 3 shards (and their gathered state is the file's), and the
// run continues as the unsharded optimizer does.
TEST(AdamWShard, CheckpointLoadsIntoAnyShardCount) {
  for (optim::StateFormat f : {optim::StateFormat::fp32, optim::StateFormat::int8}) {
    const ShardSetup s{f, optim::StatePlacement::device, DType::f32};
    auto ref_params = make_params(DType::f32);
    optim::AdamW ref(test_ctx(), ref_params, config(s, 0, 1));
    for (int t = 0; t < 3; ++t) {
      set_grads(ref, t);
      ref.step(1e-2f);
    }
    TempDir d;
    const auto file = d.path() / "optimizer.safetensors";
    magellano::io::write_safetensors(file, ref.state_st());
    std::vector<std::vector<optim::Parameter>> copies;
    std::vector<std::unique_ptr<optim::AdamW>> shards;
    for (int r = 0; r < 3; ++r) {
      copies.push_back(make_params(DType::f32));
      shards.push_back(std::make_unique<optim::AdamW>(test_ctx(), copies.back(), config(s, r, 3)));
      shards.back()->load_state(magellano::io::SafetensorsReader::open(file));
      for (size_t k = 0; k < ref.pack().chunks().size(); ++k) set_param_bytes(*shards.back(), k, param_bytes(ref, k));
      shards.back()->set_step_count(ref.step_count());
    }
    const auto want = ref.state_st(), got = gathered_state(shards);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].second.bytes, want[i].second.bytes) << got[i].first;
    set_grads(ref, 3);
    ref.step(1e-2f);
    for (auto& sh : shards) {
      set_grads(*sh, 3);
      sh->step(1e-2f);
    }
    const auto shared = compose(shards);
    for (size_t k = 0; k < shared.size(); ++k) EXPECT_EQ(shared[k], param_bytes(ref, k)) << "chunk " << k;
  }
}

// The clipping norm under ZeRO's reduce-scatter (optim::AdamW::set_partials_sum): each share
// holds the summed gradients of its own range only (here: every other element NaN, as a share
// must not read them), counts them into its per-group partial sums, and the partials are summed
// over the shares (in shard order, fp32, as train::ZeroShard::sum_partials does over MPI).
// Against the norm of an unsharded optimizer with the same norm_split (= shards: no partial-sum
// group spans two shares), bit for bit: chunks of 4096 elements, f32 and f16 gradients, 2 and 7
// shards; one chunk of 305,887 elements (256 groups of about 600 elements per share of 2, where
// groups over the whole chunk would straddle the cut).
// Broken variants caught: a share's own partials, not summed over the shares (the norm of its
// share only, far below); a share counting the NaN elements outside its range gives NaN.
namespace {

std::vector<optim::Parameter> make_big() {
  Tensor t = Tensor::from_host(test_ctx(), Shape{613, 499}, to_f32(randn(613 * 499, 77, 0.5)), DType::f32,
                               magellano::MemCategory::parameters);
  t.set_requires_grad(true).set_name("huge.weight");
  return {{"huge.weight", t, true}};
}

void poison_grads_outside_share(const optim::AdamW& opt) {
  for (size_t k = 0; k < opt.pack().chunks().size(); ++k) {
    Tensor g = opt.pack().chunks()[k].grads;
    const auto v = g.to_host();
    const optim::ElementRange r = opt.owned(k);
    if (g.dtype() == DType::f16) {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i)
        h[i] = int64_t(i) >= r.begin && int64_t(i) < r.end ? magellano::io::f32_to_f16(v[i]) : uint16_t(0x7e00);
      g.copy_from_host(h.data(), h.size() * 2);
    } else {
      std::vector<float> f(v);
      for (size_t i = 0; i < f.size(); ++i)
        if (int64_t(i) < r.begin || int64_t(i) >= r.end) f[i] = std::numeric_limits<float>::quiet_NaN();
      g.copy_from_host(f.data(), f.size() * 4);
    }
  }
}

struct NormCase {
  float unsharded, summed, own_share;
};

NormCase sharded_norms(const std::function<std::vector<optim::Parameter>()>& make, optim::AdamWConfig c, int S) {
  c.shard = 0, c.shards = 1, c.norm_split = S;
  auto ref_params = make();
  optim::AdamW ref(test_ctx(), ref_params, c);
  set_grads(ref, 0);
  NormCase out{};
  out.unsharded = ref.grad_norm(0.5f).item();
  std::vector<std::vector<optim::Parameter>> copies;
  std::vector<std::unique_ptr<optim::AdamW>> shards;
  std::vector<std::vector<float>> parts(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    copies.push_back(make());
    c.shard = s, c.shards = S;
    shards.push_back(std::make_unique<optim::AdamW>(test_ctx(), copies.back(), c));
    set_grads(*shards.back(), 0);
    poison_grads_outside_share(*shards.back());
    shards.back()->set_partials_sum([&parts, s](const Tensor& p) { parts[size_t(s)] = p.to_host(); });
    shards.back()->grad_norm(0.5f);
  }
  out.own_share = shards[0]->grad_norm(0.5f).item();  // (partials left as they are)
  std::vector<float> total = parts[0];
  for (int s = 1; s < S; ++s)
    for (size_t i = 0; i < total.size(); ++i) total[i] += parts[size_t(s)][i];
  shards[0]->set_partials_sum(
      [&total](const Tensor& p) { Tensor(p).copy_from_host(total.data(), total.size() * sizeof(float)); });
  out.summed = shards[0]->grad_norm(0.5f).item();
  return out;
}

}  // namespace

TEST(AdamWShard, TheNormOfSharesWithPartialsSummedOverThemIsTheWholeNorm) {
  for (DType dtype : {DType::f32, DType::f16})
    for (int S : {2, 7}) {
      const NormCase n = sharded_norms([dtype] { return make_params(dtype); }, config(kSetups[0], 0, 1), S);
      ASSERT_TRUE(std::isfinite(n.unsharded) && n.unsharded > 0);
      EXPECT_EQ(n.summed, n.unsharded) << magellano::to_string(dtype) << ", " << S << " shards";
      EXPECT_LT(n.own_share, 0.9f * n.unsharded) << "the partials must be summed over the shares";
    }
  optim::AdamWConfig big;
  big.max_chunk_bytes = 4 << 20;
  for (int S : {2, 3}) {
    const NormCase n = sharded_norms(make_big, big, S);
    EXPECT_EQ(n.summed, n.unsharded) << S << " shards";
    EXPECT_LT(n.own_share, 0.9f * n.unsharded);
  }
}
