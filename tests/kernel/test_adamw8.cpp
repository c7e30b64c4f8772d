// 8-bit AdamW moments (bitsandbytes' blockwise dynamic quantization, cl/adamw.cl adamw8_step)
// and host-resident ("paged") moments, against tests/support/adamw8_reference.cpp.
//
// Tolerances. The kernel rounds every fp32 operation on its own (FP_CONTRACT OFF, correctly
// rounded division and sqrt) and the reference rounds the same operations to fp32, so codes,
// absmax and parameters are compared bit for bit, over many steps (a code decision that
// differed would show at once: codes are discrete). Host placement runs the same kernels on
// page ranges that start at block boundaries: bit-identical to device placement, compared
// as bytes. 8-bit against fp32 moments is a different algorithm: compared by the loss of a
// small training run (tests/kernel/test_trainer.cpp) and here by the parameters' drift.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "adamw8_reference.hpp"
#include "harness.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/st_dtype.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/optim/dynamic_map.hpp"
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

// Odd sizes, both groups, blocks that span tensors, a chunk whose end is not a block boundary.
const std::vector<Spec> kSpecs = {
    {"a.weight", Shape{37, 53}, true}, {"a.bias", Shape{101}, false},
    {"b.weight", Shape{3, 5, 7}, true}, {"b.scale", Shape{1}, false},
    {"c.weight", Shape{257, 3}, true},  {"c.norm", Shape{999}, false},
    {"big.weight", Shape{67, 97}, true}, {"d.A_log", Shape{13, 17}, false}};
constexpr uint64_t kChunkBytes = 16 * 1024;  // several chunks (f32: 4096 elements)

std::vector<optim::Parameter> make_params(uint64_t seed, DType dtype = DType::f32) {
  std::vector<optim::Parameter> out;
  for (size_t i = 0; i < kSpecs.size(); ++i) {
    const auto& s = kSpecs[i];
    Tensor t = Tensor::from_host(test_ctx(), s.shape, to_f32(randn(s.shape.numel(), seed + i, 0.5)), dtype,
                                 magellano::MemCategory::parameters);
    t.set_requires_grad(true).set_name(s.name);
    out.push_back({s.name, t, s.decay});
  }
  return out;
}

optim::AdamWConfig config(optim::StateFormat f, optim::StatePlacement where = optim::StatePlacement::device) {
  optim::AdamWConfig c;
  c.weight_decay = 0.1f;
  c.max_chunk_bytes = kChunkBytes;
  c.states = f;
  c.offload = where;
  c.page_elements = 512;  // host placement: several pages per chunk
  return c;
}

std::vector<uint16_t> half_bits(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = magellano::io::f32_to_f16(v[i]);
  return h;
}

// Random gradients written into every chunk (padding stays zero); returns them per chunk
// (fp32 values; fp16 chunks get values that fp16 holds exactly).
std::vector<std::vector<float>> set_grads(optim::AdamW& opt, int64_t step, uint64_t seed, double scale = 0.1) {
  opt.zero_grad();
  std::vector<std::vector<float>> out;
  for (const auto& c : opt.pack().chunks()) out.emplace_back(size_t(c.numel), 0.0f);
  size_t i = 0;
  for (const auto& pp : opt.pack().params()) {
    auto g = to_f32(randn(pp.param.tensor.numel(), seed * 1000003 + step * 131 + i++, scale * (1.0 + 0.3 * i)));
    if (pp.param.tensor.dtype() == DType::f16) {
      const auto h = half_bits(g);
      for (size_t k = 0; k < g.size(); ++k) g[k] = magellano::io::f16_to_f32(h[k]);
      pp.param.tensor.grad().copy_from_host(h.data(), h.size() * 2);
    } else {
      pp.param.tensor.grad().copy_from_host(g.data(), g.size() * 4);
    }
    std::copy(g.begin(), g.end(), out[size_t(pp.chunk)].begin() + pp.offset);
  }
  return out;
}

// The device optimizer's 8-bit state of chunk k (device placement).
Adamw8State device_state(const optim::AdamW& opt, size_t k) {
  std::map<std::string, Tensor> s;
  for (const auto& [name, t] : opt.state_tensors()) s[name] = t;
  const std::string p = "adamw8." + std::to_string(k);
  Adamw8State st;
  st.mc = s.at(p + ".exp_avg.codes").to_host_u8();
  st.vc = s.at(p + ".exp_avg_sq.codes").to_host_u8();
  st.ma = s.at(p + ".exp_avg.absmax").to_host();
  st.va = s.at(p + ".exp_avg_sq.absmax").to_host();
  return st;
}

// Poisoned start: random codes and absmax everywhere (every one must be rewritten by a step).
std::vector<Adamw8State> poison_state(optim::AdamW& opt, uint64_t seed) {
  std::vector<Adamw8State> out;
  std::vector<std::pair<std::string, Tensor>> load;
  for (size_t k = 0; k < opt.pack().chunks().size(); ++k) {
    const int64_t n = opt.pack().chunks()[k].numel;
    Adamw8State st(n);
    const Vec u = uniform(2 * size_t(n), seed + k, 0, 256);
    for (int64_t i = 0; i < n; ++i) st.mc[i] = uint8_t(u[i]), st.vc[i] = uint8_t(u[n + i]);
    st.ma = to_f32(uniform(st.ma.size(), seed + 100 + k, 1e-3, 1e-2));
    st.va = to_f32(uniform(st.va.size(), seed + 200 + k, 1e-6, 1e-4));
    const std::string p = "adamw8." + std::to_string(k);
    auto& ctx = test_ctx();
    load.emplace_back(p + ".exp_avg.codes", Tensor::from_host_u8(ctx, Shape{n}, st.mc));
    load.emplace_back(p + ".exp_avg_sq.codes", Tensor::from_host_u8(ctx, Shape{n}, st.vc));
    load.emplace_back(p + ".exp_avg.absmax", Tensor::from_host(ctx, Shape{int64_t(st.ma.size())}, st.ma));
    load.emplace_back(p + ".exp_avg_sq.absmax", Tensor::from_host(ctx, Shape{int64_t(st.va.size())}, st.va));
    out.push_back(std::move(st));
  }
  opt.load_state(load);
  return out;
}


template <class T>
size_t count_diff(const std::vector<T>& a, const std::vector<T>& b) {
  size_t d = a.size() != b.size() ? 1 : 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return d;
}

// Runs `steps` steps of device and reference from a poisoned state and compares everything.
// Returns the number of differing values (codes, absmax, parameters) over all chunks.
using Mapping = optim::AdamWConfig::Int8Mapping;
size_t run_against_reference(int steps, float max_norm, float grad_scale, DType dtype, uint64_t seed,
                             Adamw8Break broken = Adamw8Break::none, Mapping mapping = Mapping::automatic) {
  auto params = make_params(seed, dtype);
  auto cfg = config(optim::StateFormat::int8);
  cfg.int8_mapping = mapping;
  if (dtype == DType::f16) cfg.max_chunk_bytes /= 2;  // the same elements per chunk
  optim::AdamW opt(test_ctx(), params, cfg);
  EXPECT_GT(opt.pack().chunks().size(), 2u);
  auto ref = poison_state(opt, seed);
  std::vector<std::vector<float>> p;
  for (const auto& c : opt.pack().chunks()) p.push_back(c.params.to_host());
  for (int s = 0; s < steps; ++s) {
    const auto g = set_grads(opt, s, seed);
    const float lr = 1e-2f / float(1 + s % 7);
    double norm = 0;
    if (max_norm > 0) {
      double sq = 0;
      for (const auto& gc : g)
        for (float x : gc) sq += double(x) * x;
      norm = std::sqrt(sq) * grad_scale;
    }
    opt.step(lr, max_norm, grad_scale);
    // The clip coefficient as the device computed it (its fp32 norm; checked against float64).
    float coef = grad_scale;
    if (max_norm > 0) {
      const float dn = opt.last_grad_norm().item();
      EXPECT_NEAR(dn, norm, 1e-6 * norm);
      coef = grad_scale * std::fmin(1.0f, max_norm / (dn + 1e-6f));
    }
    const auto sc = Adamw8Scalars::make(lr, 0.1f, 0.9f, 0.95f, 1e-8f, s + 1, coef);
    for (size_t k = 0; k < p.size(); ++k)
      // The poisoned state reaches the padding too, which then moves: decay must end where the
      // kernels end it on this device (vector width 16 on CPUs, 4 on GPUs).
      adamw8_step_reference(p[k], g[k], ref[k], opt.kernel_decay_end(k), sc, dtype == DType::f16, broken);
  }
  size_t diff = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    const Adamw8State got = device_state(opt, k);
    const size_t dc = count_diff(got.mc, ref[k].mc) + count_diff(got.vc, ref[k].vc);
    const size_t da = count_diff(got.ma, ref[k].ma) + count_diff(got.va, ref[k].va);
    const size_t dp = count_diff(opt.pack().chunks()[k].params.to_host(), p[k]);
    if (broken == Adamw8Break::none) {
      EXPECT_EQ(dc, 0u) << "chunk " << k << ": codes differ";
      EXPECT_EQ(da, 0u) << "chunk " << k << ": absmax differ";
      EXPECT_EQ(dp, 0u) << "chunk " << k << ": parameters differ";
    }
    diff += dc + da + dp;
  }
  return diff;
}

std::vector<uint8_t> all_bytes(const optim::AdamW& opt) {
  std::vector<uint8_t> out;
  for (const auto& [name, st] : opt.state_st()) out.insert(out.end(), st.bytes.begin(), st.bytes.end());
  for (const auto& c : opt.pack().chunks()) {
    const auto p = c.params.to_host();
    const auto* b = reinterpret_cast<const uint8_t*>(p.data());
    out.insert(out.end(), b, b + p.size() * 4);
  }
  return out;
}

}  // namespace

// The map of create_dynamic_map(signed, 7, 8): its structure, and every value within 2^-21
// relative of the float64 value of bitsandbytes' formula: torch computes it in float32 with about
// five roundings of up to 2^-24 relative each (linspace's step and its multiple, the sum, the
// factor 10^(i-6) and the product); measured worst: ~1.2 fp32 ulps. scripts/bnb_dynamic_map.py
// compares the table with torch's own bit for bit (on a machine with PyTorch).
TEST(AdamW8, DynamicMapIsBitsandbytesMap) {
  for (bool is_signed : {true, false}) {
    const auto& m = optim::dynamic_map(is_signed);
    for (int k = 0; k < 255; ++k) {
      ASSERT_LT(m.code[k], m.code[k + 1]) << k;
      ASSERT_EQ(m.mid[k], float(double(m.code[k]) + m.code[k + 1]) * 0.5f) << k;
    }
    EXPECT_EQ(m.code[255], 1.0f);
    EXPECT_EQ(m.code[is_signed ? 127 : 0], 0.0f);
    if (is_signed) EXPECT_LT(m.code[0], -0.99f);
    // The formula in float64: decade i holds the means of linspace(0.1, 1, f_i) times 10^(i-6).
    std::vector<double> want = {0.0, 1.0};
    for (int i = 0; i < 7; ++i) {
      const int f = (1 << (i + (is_signed ? 0 : 1))) + 1;
      for (int k = 0; k + 1 < f; ++k) {
        const double a = 0.1 + 0.9 * k / (f - 1), b = 0.1 + 0.9 * (k + 1) / (f - 1);
        const double v = std::pow(10.0, i - 6) * (a + b) / 2;
        want.push_back(v);
        if (is_signed) want.push_back(-v);
      }
    }
    ASSERT_EQ(want.size(), 256u);
    std::sort(want.begin(), want.end());
    for (int k = 0; k < 256; ++k)
      EXPECT_LE(std::fabs(m.code[k] - want[k]), std::ldexp(std::fabs(want[k]), -21)) << k;
  }
  // MAGELLANO_DYNAMIC_MAP_OUT=FILE writes the table for scripts/bnb_dynamic_map.py --check FILE.
  if (const char* out = std::getenv("MAGELLANO_DYNAMIC_MAP_OUT")) {
    std::FILE* f = std::fopen(out, "w");
    ASSERT_NE(f, nullptr) << out;
    for (bool is_signed : {true, false})
      for (int k = 0; k < 256; ++k) {
        uint32_t h;
        std::memcpy(&h, &optim::dynamic_map(is_signed).code[k], 4);
        std::fprintf(f, "%s %d %08x\n", is_signed ? "s" : "u", k, h);
      }
    std::fclose(f);
  }
  // Smallest positive codes: 10^-6 * 0.55 (signed: mean of {0.1, 1}) and 10^-6 * 0.325 (unsigned).
  EXPECT_NEAR(optim::dynamic_map(true).code[128], 5.5e-7, 1e-13);
  EXPECT_NEAR(optim::dynamic_map(false).code[1], 3.25e-7, 1e-13);
}

// The midpoint rule picks the float64-nearest code except where x lies between a midpoint and
// its fp32 rounding: on 100k random values (log-uniform over the map's range) it never differs.
TEST(AdamW8, MidpointRuleIsNearestCode) {
  for (bool is_signed : {true, false}) {
    const auto& m = optim::dynamic_map(is_signed);
    const Vec e = uniform(100000, is_signed ? 1 : 2, -7.5, 0);
    const Vec sgn = uniform(100000, 3, -1, 1);
    size_t differ = 0;
    for (size_t i = 0; i < e.size(); ++i) {
      const float x = float(std::pow(10.0, e[i]) * (is_signed && sgn[i] < 0 ? -1 : 1));
      differ += nearest_code_reference(m, x) != nearest_code_exact(m, x);
    }
    EXPECT_EQ(differ, 0u);
  }
}

// Both kernel mappings (work-group, rows) against the reference.
TEST(AdamW8, OneStepFromPoisonedStateIsBitExact) {
  for (auto m : {Mapping::group, Mapping::rows}) EXPECT_EQ(run_against_reference(1, 0, 1, DType::f32, 1, Adamw8Break::none, m), 0u);
}

TEST(AdamW8, FortyStepsWithClippingAndScaleAreBitExact) {
  for (auto m : {Mapping::group, Mapping::rows})
    EXPECT_EQ(run_against_reference(40, 1.0f, 0.25f, DType::f32, 2, Adamw8Break::none, m), 0u);
}

TEST(AdamW8, Fp16ParametersAreBitExact) {
  for (auto m : {Mapping::group, Mapping::rows}) EXPECT_EQ(run_against_reference(20, 0, 1, DType::f16, 3, Adamw8Break::none, m), 0u);
}

// The comparison catches a deliberately broken quantizer: no sign fix, codes rounded down,
// blocks of 128.
TEST(AdamW8, BrokenVariantsAreCaught) {
  for (auto b : {Adamw8Break::no_sign_fix, Adamw8Break::round_down, Adamw8Break::block_128}) {
    const size_t d = run_against_reference(3, 0, 1, DType::f32, 4, b);
    std::printf("  broken variant %d: %zu values differ\n", int(b), d);
    EXPECT_GT(d, 0u);
  }
}

// Zero moments (a fresh optimizer) read back as 0, and a block whose values are all zero
// (padding, or a parameter that never gets a gradient) keeps absmax 0 and the code of 0.
TEST(AdamW8, ZeroBlocksStayZero) {
  Tensor w = Tensor::from_host(test_ctx(), Shape{300}, std::vector<float>(300, 1.0f));
  w.set_requires_grad(true);
  optim::AdamW opt(test_ctx(), {{"w", w, false}}, config(optim::StateFormat::int8));
  opt.zero_grad();
  std::vector<float> g(300, 0.0f);
  for (int i = 0; i < 256; ++i) g[i] = 1e-3f * float(i % 7 - 3);
  w.grad().copy_from_host(g.data(), g.size() * 4);
  opt.step(1e-3f);
  const Adamw8State st = device_state(opt, 0);
  ASSERT_EQ(st.ma.size(), 2u);  // 320 elements (300 + padding): blocks of 256 and 64
  EXPECT_GT(st.ma[0], 0.0f);
  EXPECT_EQ(st.ma[1], 0.0f);
  EXPECT_EQ(st.va[1], 0.0f);
  for (int i = 256; i < 320; ++i) EXPECT_EQ(int(st.mc[i]), 127) << i;
  for (int i = 256; i < 320; ++i) EXPECT_EQ(int(st.vc[i]), 0) << i;
  const auto p = w.to_host();
  for (int i = 256; i < 300; ++i) EXPECT_EQ(p[i], 1.0f);
  // A negative first moment never reads back as +0 (bitsandbytes' sign fix): the tiny ones
  // get the smallest negative code.
  for (int i = 0; i < 256; ++i)
    if (g[i] < 0) EXPECT_LT(optim::dynamic_map(true).code[st.mc[i]], 0.0f) << i;
}

// 8-bit moments track fp32 moments: after 100 steps of the same gradients, every parameter
// is within 5% of the largest total movement of the fp32 run (the 8-bit map's codes are ~1-7%
// apart relative to their value, and the errors average over steps; measured: 2.2%).
TEST(AdamW8, FollowsFp32Moments) {
  auto p8 = make_params(5), p32 = make_params(5), p0 = make_params(5);
  optim::AdamW o8(test_ctx(), p8, config(optim::StateFormat::int8));
  optim::AdamW o32(test_ctx(), p32, config(optim::StateFormat::fp32));
  for (int s = 0; s < 100; ++s) {
    set_grads(o8, s, 5), set_grads(o32, s, 5);
    o8.step(1e-3f, 1.0f), o32.step(1e-3f, 1.0f);
  }
  double worst = 0, moved = 0;
  for (size_t i = 0; i < p8.size(); ++i) {
    const auto a = p8[i].tensor.to_host(), b = p32[i].tensor.to_host(), z = p0[i].tensor.to_host();
    for (size_t k = 0; k < a.size(); ++k) {
      worst = std::max(worst, std::fabs(double(a[k]) - b[k]));
      moved = std::max(moved, std::fabs(double(b[k]) - z[k]));
    }
  }
  std::printf("  100 steps: largest fp32 movement %.3e, largest 8-bit difference %.3e (%.1f%%)\n", moved, worst,
              100 * worst / moved);
  EXPECT_GT(moved, 0.04);
  EXPECT_LT(worst, 0.05 * moved);
}

// Host placement ("paged") is bit-identical to device placement, for fp32 and int8 moments and
// f32 and f16 (stochastically rounded) parameters, with several pages per chunk.
TEST(AdamW8, HostPlacementIsBitIdentical) {
  for (auto f : {optim::StateFormat::fp32, optim::StateFormat::int8})
    for (DType dt : {DType::f32, DType::f16}) {
      auto pd = make_params(6, dt), ph = make_params(6, dt);
      auto cd = config(f), ch = config(f, optim::StatePlacement::host);
      cd.stochastic_rounding = ch.stochastic_rounding = dt == DType::f16;
      optim::AdamW od(test_ctx(), pd, cd), oh(test_ctx(), ph, ch);
      ASSERT_GT(oh.pack().chunks()[0].numel, 2 * ch.page_elements);
      for (int s = 0; s < 12; ++s) {
        set_grads(od, s, 6), set_grads(oh, s, 6);
        od.step(1e-2f, s % 2 ? 1.0f : 0.0f), oh.step(1e-2f, s % 2 ? 1.0f : 0.0f);
      }
      const auto a = all_bytes(od), b = all_bytes(oh);
      EXPECT_EQ(a.size(), b.size());
      EXPECT_TRUE(a == b) << "format " << int(f) << " dtype " << to_string(dt) << ": " << count_diff(a, b)
                          << " bytes differ";
      EXPECT_EQ(oh.host_state_bytes(), od.device_state_bytes() - (f == optim::StateFormat::int8 ? 1022 * 4 : 0));
      EXPECT_LT(oh.device_state_bytes(), od.device_state_bytes());
      EXPECT_THROW(oh.state_tensors(), magellano::Error);
    }
}

// Checkpointed state (state_st written to safetensors, loaded by name) continues bit-exactly,
// across placements (device -> host and back), for both formats; a file of the other format
// is refused naming the missing entry.
TEST(AdamW8, StateRoundTripContinuesBitExactly) {
  TempDir dir;
  for (auto f : {optim::StateFormat::fp32, optim::StateFormat::int8}) {
    auto ref = make_params(7);
    optim::AdamW oref(test_ctx(), ref, config(f));
    for (int s = 0; s < 10; ++s) set_grads(oref, s, 7), oref.step(1e-2f, 1.0f);
    for (auto first : {optim::StatePlacement::device, optim::StatePlacement::host}) {
      const auto second = first == optim::StatePlacement::device ? optim::StatePlacement::host
                                                                 : optim::StatePlacement::device;
      auto pa = make_params(7);
      std::vector<std::vector<float>> saved;
      {
        optim::AdamW oa(test_ctx(), pa, config(f, first));
        for (int s = 0; s < 5; ++s) set_grads(oa, s, 7), oa.step(1e-2f, 1.0f);
        magellano::io::write_safetensors(dir / "opt.safetensors", oa.state_st());
        for (const auto& p : pa) saved.push_back(p.tensor.to_host());
      }
      std::vector<optim::Parameter> pb;
      for (size_t i = 0; i < kSpecs.size(); ++i) {
        Tensor t = Tensor::from_host(test_ctx(), kSpecs[i].shape, saved[i]);
        t.set_requires_grad(true);
        pb.push_back({kSpecs[i].name, t, kSpecs[i].decay});
      }
      optim::AdamW ob(test_ctx(), pb, config(f, second));
      ob.load_state(magellano::io::SafetensorsReader::open(dir / "opt.safetensors"));
      ob.set_step_count(5);
      for (int s = 5; s < 10; ++s) set_grads(ob, s, 7), ob.step(1e-2f, 1.0f);
      EXPECT_TRUE(all_bytes(ob) == all_bytes(oref)) << "format " << int(f) << " resumed on the other placement";
    }
    // The other format's file is refused.
    auto pc = make_params(7);
    optim::AdamW oc(test_ctx(), pc, config(f == optim::StateFormat::fp32 ? optim::StateFormat::int8 : optim::StateFormat::fp32));
    EXPECT_THROW(oc.load_state(magellano::io::SafetensorsReader::open(dir / "opt.safetensors")), magellano::Error);
  }
}

TEST(AdamW8, MemoryIsTwoBytesPerParameter) {
  auto p = make_params(8);
  optim::AdamW o8(test_ctx(), make_params(8), config(optim::StateFormat::int8));
  optim::AdamW o32(test_ctx(), p, config(optim::StateFormat::fp32));
  int64_t numel = 0;
  for (const auto& c : o8.pack().chunks()) numel += c.numel;
  EXPECT_EQ(o32.device_state_bytes(), uint64_t(numel) * 8);
  EXPECT_EQ(o8.device_state_bytes(), uint64_t(numel) * 2 + 1022 * 4 + [&] {
    uint64_t b = 0;
    for (const auto& c : o8.pack().chunks()) b += uint64_t(optim::quant_blocks(c.numel)) * 8;
    return b;
  }());
  EXPECT_DOUBLE_EQ(optim::moment_bytes_per_element(optim::StateFormat::int8), 2.03125);
}
