// gather_rows / embedding / scatter_add_rows against their float64 references
// (ref::gather_rows, ref::scatter_add_rows: each is the other's gradient), sort_indices as a
// stable permutation. Perf sizes: a GPT-2 embedding (V 50,257, D 768) looked up by 8 x 512
// tokens, the same rows gathered and scattered, and the sort of 8 x 512 x 2 MoE routing ids.
// Tolerances:
//  - gather forward (and scatter backward) is a copy of f32 values: exact (rtol = atol = 0).
//  - a scatter-add / gather gradient element sums c fp32 values of size ~1 in increasing n;
//    the sum's rounding is at most about c * 2^-24 * sum|terms|, so rtol 1e-5 with
//    atol = 1e-6 * c_max (c_max: the largest number of ids naming one row) covers it.
//  - the reference's own finite-difference check sums N * D products of size ~1 into the loss,
//    whose float64 rounding (~1e-16 * N * D) divided by the step 2e-6 sets fd_atol for the
//    large cases.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>

#include "magellano/ops/index.hpp"
#include "op_case.hpp"
#include "reference.hpp"

using namespace mgtest;
namespace ops = magellano::ops;

namespace {

// ids in [0, rows): `hot` of them all name row `hot_row`, the rest are drawn from the even rows
// only, so odd rows (other than hot_row) are never hit.
std::vector<int32_t> make_ids(size_t n, int32_t rows, size_t hot, int32_t hot_row, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, std::max(0, (rows - 1) / 2));
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = i < hot ? hot_row : 2 * d(rng);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

Vec as_vec(const std::vector<int32_t>& v) { return Vec(v.begin(), v.end()); }

int64_t max_count(const std::vector<int32_t>& ids) {
  std::map<int32_t, int64_t> c;
  int64_t m = 1;
  for (int32_t i : ids) m = std::max(m, ++c[i]);
  return m;
}

// Gathering N rows of width D: the forward reads the ids and N rows and writes N rows:
// 4 (N + 2 N D) bytes. The backward sorts the ids (their keys and permutation, ~4 * 4 N
// bytes) and sums the N gradient rows into the table's gradient: 4 (2 N D + R D) bytes (the
// table of R rows is written once, the rows no id names as zeros); N D FLOPs.
Cost gather_cost(double rows, double d, double n) {
  return {4 * (n + 2 * n * d), 0, 4 * (4 * n + 2 * n * d + rows * d), n * d};
}

// `ids` (made when the case runs) index a (rows, d) table; as_embedding: ops::embedding with
// ids of shape ids_shape, else ops::gather_rows.
CaseSpec gather_case(const std::string& name, int64_t rows, int64_t d, std::function<std::vector<int32_t>()> make,
                     bool as_embedding, const Shape& ids_shape, double fd_atol = 1e-7) {
  return {name, [=] {
            const std::vector<int32_t> ids = make();
            const double cmax = static_cast<double>(max_count(ids));
            OpCase c;
            c.inputs = {{Shape{rows, d}, randn(rows * d, 21 + rows)}, Input{ids_shape, as_vec(ids), false, DType::i32}};
            c.device = [as_embedding](auto& t) {
              return as_embedding ? ops::embedding(t[0], t[1]) : ops::gather_rows(t[0], t[1]);
            };
            c.ref = [rows, d](auto& x) { return ref::gather_rows(x[0], x[1], rows, d); };
            c.ref_grad = [rows, d](auto& x, const Vec& g) {
              return std::vector<Vec>{ref::scatter_add_rows(g, x[1], rows, d), Vec{}};
            };
            c.tol = Tolerance{.fwd_rtol = 0, .fwd_atol = 0, .grad_rtol = 1e-5, .grad_atol = 1e-6 * cmax,
                              .fd_rtol = 1e-5, .fd_atol = fd_atol};
            c.sizes = {{"rows", rows}, {"d", d}, {"ids", dims(ids_shape)}};
            c.cost = gather_cost(double(rows), double(d), double(ids.size()));
            return c;
          }};
}

// n rows of width d added into `rows` rows by id: the forward reads the ids and the rows and
// writes the table (4 (n + n d + rows d) bytes, n d FLOPs); the backward gathers (a copy).
CaseSpec scatter_case(const std::string& name, int64_t n, int64_t d, int64_t rows,
                      std::function<std::vector<int32_t>()> make, uint64_t seed, bool exact) {
  return {name, [=] {
            const std::vector<int32_t> ids = make();
            const double cmax = static_cast<double>(max_count(ids));
            OpCase c;
            c.inputs = {{Shape{n, d}, randn(n * d, seed)}, Input{Shape{n}, as_vec(ids), false, DType::i32}};
            c.device = [rows](auto& t) { return ops::scatter_add_rows(t[0], t[1], rows); };
            c.ref = [=](auto& x) { return ref::scatter_add_rows(x[0], x[1], rows, d); };
            c.ref_grad = [=](auto& x, const Vec& g) { return std::vector<Vec>{ref::gather_rows(g, x[1], rows, d), Vec{}}; };
            // forward sums up to c values; backward is a copy (exact)
            c.tol = exact ? Tolerance{.fwd_rtol = 0, .fwd_atol = 0, .grad_rtol = 0, .grad_atol = 0}
                          : Tolerance{.fwd_rtol = 1e-5, .fwd_atol = 1e-6 * cmax, .grad_rtol = 0, .grad_atol = 0};
            c.sizes = {{"n", n}, {"d", d}, {"rows", rows}};
            c.cost = {4.0 * (n + n * d + rows * d), double(n * d), 4.0 * (n + 2 * n * d), 0};
            return c;
          }};
}

// The perf ids: 8 x 512 tokens of GPT-2's vocabulary, 500 of them on one row.
std::vector<int32_t> perf_ids() { return make_ids(8 * 512, 50257, 500, 50256, 6); }

const RegisterOp reg_gather{
    {"gather_rows",
     {// 29 tokens over 13 rows: 9 on row 5, the rest on even rows; odd rows but 5 get nothing
      gather_case("gather_rows 13x7 N29 repeated", 13, 7, [] { return make_ids(29, 13, 9, 5, 1); }, false, Shape{29}),
      gather_case("gather_rows N1", 11, 5, [] { return std::vector<int32_t>{7}; }, false, Shape{1}),
      gather_case("gather_rows R1", 1, 3, [] { return std::vector<int32_t>(17, 0); }, false, Shape{17}),
      // Policy (see index.hpp): no device check; an out-of-range id reads as a zero row and
      // gets no gradient; validate_indices() is the (blocking) host check.
      gather_case("gather_rows out-of-range ids", 7, 4, [] { return std::vector<int32_t>{3, -1, 0, 7, 3, 1000}; },
                  false, Shape{6})},
     gather_case("gather_rows 50257x768 N4096", 50257, 768, perf_ids, false, Shape{8 * 512})}};

const RegisterOp reg_embedding{
    {"embedding",
     {gather_case("embedding 23x9 ids 3x11", 23, 9, [] { return make_ids(33, 23, 10, 3, 2); }, true, Shape{3, 11}),
      // V = 5003, N = 1500 (300 of them on one row), D = 19: several sort blocks and merge stages.
      gather_case("embedding V5003 N1500", 5003, 19, [] { return make_ids(1500, 5003, 300, 4001, 3); }, true,
                  Shape{1500}, 1e-5)},
     gather_case("embedding 50257x768 ids 8x512", 50257, 768, perf_ids, true, Shape{8, 512})}};

const RegisterOp reg_scatter{
    {"scatter_add_rows",
     {scatter_case("scatter_add_rows 41x9 to 17", 41, 9, 17, [] { return make_ids(41, 17, 12, 9, 4); }, 31, false),
      scatter_case("scatter_add_rows N1", 1, 4, 3, [] { return std::vector<int32_t>{2}; }, 32, true)},
     scatter_case("scatter_add_rows 4096x768 to 50257", 8 * 512, 768, 50257, perf_ids, 33, false)}};

// Sort (perf only: SortIsAStablePermutation below checks it). Keys and permutation: a radix
// pass reads and writes both (16 bytes a key) per pass; the model counts one pass, no FLOPs.
CaseSpec sort_case(int64_t n, int32_t distinct) {
  return {"sort_indices n" + std::to_string(n), [=] {
            std::mt19937_64 rng(7);
            std::uniform_int_distribution<int32_t> d(0, distinct - 1);
            Vec keys(n);
            for (auto& k : keys) k = d(rng);
            OpCase c;
            c.inputs = {Input{Shape{n}, keys, false, DType::i32}};
            c.device = [](auto& t) { return ops::sort_indices(t[0]).perm; };
            c.sizes = {{"n", n}, {"distinct_keys", distinct}};
            c.cost = {16.0 * n, 0, 0, 0};
            return c;
          }};
}
const RegisterOp reg_sort{{"sort_indices", {}, sort_case(8 * 512 * 2, 8)}};

}  // namespace

TEST(Index, GatherBackwardIsBitForBitReproducible) {
  const int64_t rows = 301, d = 33, n = 2999;
  const std::vector<int32_t> ids = make_ids(n, rows, 1000, 17, 5);
  const Vec w = randn(rows * d, 41), dout = randn(n * d, 42);
  std::vector<std::vector<float>> grads;
  for (int run = 0; run < 2; ++run) {
    Tensor weight = upload(Shape{rows, d}, w, true);
    Tensor out = ops::gather_rows(weight, upload_i32(Shape{n}, ids));
    magellano::autograd::backward(out, upload(out.shape(), dout));
    grads.push_back(weight.grad().to_host());
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  EXPECT_EQ(std::memcmp(grads[0].data(), grads[1].data(), grads[0].size() * sizeof(float)), 0);
}

TEST(Index, SortIsAStablePermutation) {
  for (int64_t n : {1, 2, 3, 511, 512, 513, 1000, 4097}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::mt19937_64 rng(100 + n);
    // Few distinct keys (many ties), negative ones and the int32 extremes included.
    std::uniform_int_distribution<int32_t> d(-20, 40);
    std::vector<int32_t> keys(n);
    for (auto& k : keys) k = d(rng);
    keys[0] = std::numeric_limits<int32_t>::max();
    if (n > 1) keys[n - 1] = std::numeric_limits<int32_t>::min();
    const std::vector<int32_t> perm = ref::stable_argsort(keys);
    std::vector<int32_t> sorted(n);
    for (int64_t i = 0; i < n; ++i) sorted[i] = keys[perm[i]];
    ops::SortedIndices s = ops::sort_indices(upload_i32(Shape{n}, keys));
    EXPECT_EQ(s.keys.to_host_i32(), sorted);
    EXPECT_EQ(s.perm.to_host_i32(), perm);
  }
}

TEST(Index, OutOfRangeIdsAreZeroRowsWithoutGradientAndValidateThrows) {
  // Policy (see index.hpp): no device check; an out-of-range id reads as a zero row and gets
  // no gradient (the registered case "gather_rows out-of-range ids"); validate_indices() is the
  // (blocking) host check.
  const std::vector<int32_t> ids = {3, -1, 0, 7, 3, 1000};
  Tensor idx = upload_i32(Shape{6}, ids);
  try {
    ops::validate_indices(idx, 7, "token ids");
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("token ids: id -1 at position 1 is outside [0, 7)"),
              std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ops::validate_indices(upload_i32(Shape{3}, {0, 6, 2}), 7));
}

TEST(Index, BadShapesAreAClearError) {
  Tensor src = upload(Shape{5, 3}, randn(15, 1));
  try {
    ops::gather_rows(src, upload_i32(Shape{2, 2}, {0, 1, 2, 3}));
    FAIL() << "expected an error";
  } catch (const magellano::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gather_rows: idx must be 1-D (N), got (2, 2)"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::gather_rows(src, upload(Shape{2}, {0, 1})), magellano::Error);  // f32 ids
  EXPECT_THROW(ops::scatter_add_rows(src, upload_i32(Shape{4}, {0, 1, 2, 3}), 9), magellano::Error);
  EXPECT_THROW(ops::embedding(upload(Shape{15}, randn(15, 2)), upload_i32(Shape{1}, {0})),
               magellano::Error);
}

TEST(Index, EmbeddingAtGpt2ScaleIsFastAndRight) {
  // V = 50257, D = 1024, N = 4096: nothing may loop over V * N. Checks sampled rows.
  const int64_t v = 50257, d = 1024, n = 4096;
  std::vector<float> w(v * d);
  for (int64_t i = 0; i < v * d; ++i) w[i] = static_cast<float>((i * 7919) % 1001) / 1001.0f;
  std::vector<int32_t> ids = make_ids(n, static_cast<int32_t>(v), 500, 50256, 6);
  std::vector<float> dout(n * d);
  for (int64_t i = 0; i < n * d; ++i) dout[i] = static_cast<float>((i * 104729) % 513) / 512.0f;
  Tensor weight = Tensor::from_host(test_ctx(), Shape{v, d}, w);
  weight.set_requires_grad(true);
  Tensor tok = upload_i32(Shape{4, n / 4}, ids);
  Tensor seed = Tensor::from_host(test_ctx(), Shape{4, n / 4, d}, dout);
  test_ctx().finish();
  const auto t0 = std::chrono::steady_clock::now();
  Tensor out = ops::embedding(weight, tok);
  magellano::autograd::backward(out, seed);
  test_ctx().finish();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("embedding V=%lld D=%lld N=%lld forward+backward: %.1f ms\n", (long long)v,
              (long long)d, (long long)n, ms);
  const std::vector<float> y = out.to_host(), g = weight.grad().to_host();
  for (int64_t t : {int64_t(0), int64_t(1234), n - 1})
    for (int64_t c = 0; c < d; c += 101) ASSERT_EQ(y[t * d + c], w[ids[t] * d + c]);
  // Rows: the hot one, one that is never hit (odd), and the row of token 77.
  for (int64_t r : {int64_t(50256), int64_t(1), int64_t(ids[77])}) {
    for (int64_t c = 0; c < d; c += 97) {
      double want = 0, mag = 0;
      for (int64_t t = 0; t < n; ++t)
        if (ids[t] == r) want += dout[t * d + c], mag += std::fabs(dout[t * d + c]);
      // fp32 sum of up to 500 terms: error below 500 * 2^-24 * sum|terms|.
      EXPECT_NEAR(g[r * d + c], want, 3e-5 * mag + 1e-6) << "row " << r << " col " << c;
    }
  }
}
