// Decoding against the paged KV cache (ops::kv_cache_write, ops::attention_decode) against float64
// (ref::attention_decode over a plain list of the row's past keys and values): registered op cases
// (no autograd: forward only, with poisoned outputs; both kernel mappings: Ops/ and
// OtherMapping/) with rows of different lengths crossing block boundaries, a zero-length row,
// shuffled physical blocks and unused table entries of -1, in one split or several; the cache
// written by kv_cache_write (a prefill, then single steps) lands exactly where the table says; a
// decode step equals the parallel attention's row at the same position; bad input. Perf size:
// B 8 rows at 2,048 positions, nH 16, nKV 4, d 64, blocks of 16.
// Tolerances (fp32 against float64): rtol 1e-5, atol 1e-5: each output is a convex combination of
// values with weights from d-term fp32 dot products (as the attention forward); the split-K
// combine adds one rescaling per split. Against ops::attention: the same, 2e-5 (two fp32 results).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "error_text.hpp"
#include "magellano/ops/attention.hpp"
#include "magellano/ops/attention_decode.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

struct Case {
  int64_t h, kvh, d, block_size;
  std::vector<int64_t> lengths;  // per row; B = lengths.size()
  int64_t split = 0, max_length = 0;
  uint64_t seed = 500;
};

// A block table giving each row ceil(length / block_size) physical blocks, shuffled over the pool
// (plus one spare), -1 elsewhere; `width` entries per row.
struct Table {
  std::vector<int32_t> entries;
  int64_t width, num_blocks;
};

Table make_table(const Case& c, uint64_t seed) {
  Table t;
  t.width = 1;
  int64_t used = 0;
  for (int64_t len : c.lengths) {
    const int64_t n = (len + c.block_size - 1) / c.block_size;
    t.width = std::max(t.width, n + 1);
    used += n;
  }
  t.num_blocks = used + 1;
  std::vector<int32_t> phys(t.num_blocks);
  std::iota(phys.begin(), phys.end(), 0);
  std::shuffle(phys.begin(), phys.end(), std::mt19937(seed));
  t.entries.assign(c.lengths.size() * t.width, -1);
  int64_t next = 0;
  for (size_t b = 0; b < c.lengths.size(); ++b)
    for (int64_t i = 0; i < (c.lengths[b] + c.block_size - 1) / c.block_size; ++i) t.entries[b * t.width + i] = phys[next++];
  return t;
}

Vec as_values(const std::vector<int32_t>& v) { return {v.begin(), v.end()}; }

// The row's first `len` keys (or values) gathered from a pool through the table: (len, KVH, d).
Vec gather_row(const Vec& pool, const std::vector<int32_t>& table, int64_t width, int64_t b, int64_t len, int64_t bs,
               int64_t kvh, int64_t d) {
  Vec out;
  for (int64_t p = 0; p < len; ++p) {
    const int64_t blk = table[b * width + p / bs];
    const auto* src = &pool[((blk * bs + p % bs) * kvh) * d];
    out.insert(out.end(), src, src + kvh * d);
  }
  return out;
}

std::string name_of(const Case& c) {
  std::string s = "attention_decode H" + std::to_string(c.h) + " KV" + std::to_string(c.kvh) + " d" +
                  std::to_string(c.d) + " block" + std::to_string(c.block_size) + " lengths";
  for (int64_t l : c.lengths) s += " " + std::to_string(l);
  if (c.split) s += " split" + std::to_string(c.split);
  if (c.max_length) s += " max" + std::to_string(c.max_length);
  return s;
}

CaseSpec decode_case(const Case& c) {
  return {name_of(c), [c] {
            const int64_t b = c.lengths.size();
            const Table t = make_table(c, c.seed);
            const Shape pool{t.num_blocks, c.block_size, c.kvh, c.d};
            OpCase oc;
            oc.inputs = {{Shape{b, c.h, c.d}, randn(b * c.h * c.d, c.seed + 1), false},
                         {pool, randn(pool.numel(), c.seed + 2), false},
                         {pool, randn(pool.numel(), c.seed + 3), false},
                         {Shape{b, t.width}, as_values(t.entries), false, DType::i32},
                         {Shape{b}, Vec(c.lengths.begin(), c.lengths.end()), false, DType::i32}};
            oc.device = [c](const std::vector<Tensor>& x) {
              return ops::attention_decode(x[0], x[1], x[2], x[3], x[4], {.split = c.split, .max_length = c.max_length});
            };
            oc.ref = [c, t](const std::vector<Vec>& x) {
              const double scale = 1.0 / std::sqrt(double(c.d));
              Vec out;
              const std::vector<int32_t> table(x[3].begin(), x[3].end());
              for (size_t r = 0; r < c.lengths.size(); ++r) {
                const int64_t len = c.lengths[r];
                const Vec q(x[0].begin() + r * c.h * c.d, x[0].begin() + (r + 1) * c.h * c.d);
                const Vec keys = gather_row(x[1], table, t.width, r, len, c.block_size, c.kvh, c.d);
                const Vec values = gather_row(x[2], table, t.width, r, len, c.block_size, c.kvh, c.d);
                const Vec o = ref::attention_decode(q, keys, values, len, c.h, c.kvh, c.d, scale);
                out.insert(out.end(), o.begin(), o.end());
              }
              return out;
            };
            oc.ref_grad = [](const std::vector<Vec>& x, const Vec&) { return std::vector<Vec>(x.size()); };
            oc.tol = {.fwd_rtol = 1e-5, .fwd_atol = 1e-5};
            const int64_t positions = std::accumulate(c.lengths.begin(), c.lengths.end(), int64_t(0));
            oc.sizes = {{"B", b}, {"nH", c.h}, {"nKV", c.kvh}, {"d", c.d}, {"block", c.block_size},
                        {"positions", positions}};
            // Keys and values of every cached position read once; 4·nH·d FLOPs per position (q·k and p·v).
            oc.cost = {8.0 * positions * c.kvh * c.d + 8.0 * b * c.h * c.d, 4.0 * positions * c.h * c.d, 0, 0};
            return oc;
          }};
}

const RegisterOp reg{
    {"attention_decode",
     {
         decode_case({4, 2, 64, 8, {5, 0, 17, 33}}),                 // one split per row
         decode_case({4, 2, 64, 8, {5, 0, 17, 33}, 4}),              // splits of 4: many per row
         decode_case({8, 2, 32, 16, {1, 100, 0, 47}, 7, 100}),       // splits crossing blocks, a length hint
         decode_case({2, 2, 128, 4, {9, 3}}),                        // ratio 1, d 128
         decode_case({4, 1, 80, 5, {31, 12, 0}, 8}),                 // ratio 4, d 80, odd blocks
         decode_case({2, 1, 40, 8, {300}, 64}),                      // a longer row
         decode_case({4, 2, 64, 16, {300, 130}}),                    // several tiles of 128 in a split
     },
     decode_case({16, 4, 64, 16, std::vector<int64_t>(8, 2048)})}};

Tensor zeros(const Shape& s) { return upload(s, Vec(s.numel(), 0.0)); }

}  // namespace

// A prefill of T positions, then single steps: every element lands at the slot the table names,
// bit for bit, and nothing else in the pool changes.
TEST(AttentionDecode, CacheWritesLandWhereTheTableSays) {
  const Case c{4, 2, 16, 4, {6, 0, 9}};
  const Table t = make_table(c, 3);
  const int64_t b = 3, kvh = c.kvh, d = c.d, bs = c.block_size;
  const Shape pool{t.num_blocks, bs, kvh, d};
  Tensor kp = zeros(pool), vp = zeros(pool);
  const Tensor table = upload_i32(Shape{b, t.width}, t.entries);
  Vec want_k(pool.numel(), 0.0), want_v(pool.numel(), 0.0);
  auto write = [&](int64_t steps, std::vector<int32_t> pos, uint64_t seed) {
    const Vec k = randn(b * steps * kvh * d, seed), v = randn(b * steps * kvh * d, seed + 1);
    ops::kv_cache_write(kp, vp, upload(Shape{b, steps, kvh, d}, k), upload(Shape{b, steps, kvh, d}, v), table,
                        upload_i32(Shape{b}, pos));
    for (int64_t r = 0; r < b; ++r)
      for (int64_t s = 0; s < steps; ++s) {
        const int64_t p = pos[r] + s;
        if (p / bs >= t.width || t.entries[r * t.width + p / bs] < 0) continue;  // skipped
        const int64_t dst = ((t.entries[r * t.width + p / bs] * bs + p % bs) * kvh) * d;
        for (int64_t i = 0; i < kvh * d; ++i) {
          want_k[dst + i] = k[(r * steps + s) * kvh * d + i];
          want_v[dst + i] = v[(r * steps + s) * kvh * d + i];
        }
      }
  };
  write(5, {0, 0, 0}, 10);  // a prefill (row 1 has no blocks: skipped)
  write(1, {5, 0, 5}, 20);  // steps
  write(1, {6, 0, 6}, 30);
  write(1, {7, 0, 7}, 40);  // row 0: block 1, slot 3 (its last); row 2 crosses into block 1
  EXPECT_EQ(to_f64(kp.to_host()), want_k);
  EXPECT_EQ(to_f64(vp.to_host()), want_v);
}

// Decoding the token at position t (its key and value written, length t + 1) gives the parallel
// causal attention's row t, in both mappings, in one split and in several.
TEST(AttentionDecode, EqualsTheParallelAttentionsRows) {
  const int64_t l = 41, h = 4, kvh = 2, d = 64, bs = 8;
  const Vec q = randn(l * h * d, 1), k = randn(l * kvh * d, 2), v = randn(l * kvh * d, 3);
  for (auto mapping : {magellano::ops::KernelMapping::cpu, magellano::ops::KernelMapping::gpu}) {
    ForcedMapping forced(mapping);
    const std::vector<float> full =
        ops::attention(upload(Shape{1, l, h, d}, q), upload(Shape{1, l, kvh, d}, k), upload(Shape{1, l, kvh, d}, v))
            .to_host();
    const int64_t nb = (l + bs - 1) / bs;
    std::vector<int32_t> entries(nb);
    for (int64_t i = 0; i < nb; ++i) entries[i] = int32_t(nb - 1 - i);  // reversed physical blocks
    const Tensor table = upload_i32(Shape{1, nb}, entries);
    Tensor kp = zeros(Shape{nb, bs, kvh, d}), vp = zeros(Shape{nb, bs, kvh, d});
    ops::kv_cache_write(kp, vp, upload(Shape{1, l, kvh, d}, k), upload(Shape{1, l, kvh, d}, v), table,
                        upload_i32(Shape{1}, {0}));
    for (int64_t t : {int64_t(0), int64_t(7), int64_t(8), int64_t(23), l - 1})
      for (int64_t split : {int64_t(0), int64_t(5), int64_t(16)}) {
        const Vec qt(q.begin() + t * h * d, q.begin() + (t + 1) * h * d);
        const std::vector<float> got =
            ops::attention_decode(upload(Shape{1, h, d}, qt), kp, vp, table, upload_i32(Shape{1}, {int32_t(t + 1)}),
                                  {.split = split})
                .to_host();
        const Vec want(full.begin() + t * h * d, full.begin() + (t + 1) * h * d);
        expect_close(got, want, 2e-5, 2e-5,
                     std::string(to_string(mapping)) + " position " + std::to_string(t) + " split " + std::to_string(split));
      }
  }
}

TEST(AttentionDecode, BadInputIsOneClearError) {
  using mgtest::expect_error;
  const Tensor kp = zeros(Shape{4, 8, 2, 32}), table = upload_i32(Shape{2, 3}, {0, 1, -1, 2, 3, -1});
  const Tensor lengths = upload_i32(Shape{2}, {3, 9}), q = zeros(Shape{2, 4, 32});
  expect_error([&] { ops::attention_decode(zeros(Shape{2, 3, 32}), kp, kp, table, lengths); },
               "the 2 kv heads must divide the 3 query heads");
  expect_error([&] { ops::attention_decode(zeros(Shape{2, 4, 16}), kp, kp, table, lengths); }, "q must be (B, heads, d)");
  expect_error([&] { ops::attention_decode(q, kp, zeros(Shape{4, 8, 1, 32}), table, lengths); },
               "k_pool and v_pool must both be");
  expect_error([&] { ops::attention_decode(q, kp, kp, upload(Shape{2, 3}, Vec(6, 0.0)), lengths); },
               "'block_table' must be i32");
  expect_error([&] { ops::attention_decode(q, kp, kp, table, upload_i32(Shape{3}, {1, 2, 3})); },
               "block_table must be (B, max_blocks_per_row) and lengths (B)");
  expect_error([&] { ops::kv_cache_write(kp, kp, zeros(Shape{2, 1, 2, 16}), zeros(Shape{2, 1, 2, 16}), table, lengths); },
               "k and v must be (B, T, kv_heads, d)");
}
