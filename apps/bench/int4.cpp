// `bench int4`: int4 weights on the device (ops/int4.hpp) on one (--out, --in) weight (default
// 8192 x 2048, the size `bench nf4` reports its fused kernel at), group --group (128):
//   int4_linear  x (rows, in) · W'ᵀ for rows 1, 4, 8 (fused kernel; GB/s: the packed weight, its
//                scales, x and y, against the copy peak) and the dequantize + GEMM path at 8 and
//                --tokens rows (GFLOP/s), beside the dense fp32 linear at the same rows (its GB/s
//                counts the 4-byte weight): batch-1 decoding reads every weight once a token.
//   quantize     quantize_int4 on the device (GB/s: 4 bytes read, 0.52 written a weight)
//   dequantize   int4 -> f32 (GB/s: 4.52 bytes a weight)
//   error        int4 (group 128, fp16 scales) vs NF4 (blocks of 64, double quantization) on the
//                same N(0, 0.02)-like weight: mean |w - w'|, relative L1 and bits a weight.
#include <cmath>

#include "bench.hpp"
#include "magellano/ops/int4.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/ops/nf4.hpp"
#include "magellano/ops/nf4_linear.hpp"

namespace magellano::bench {
namespace {

std::vector<Result> run_int4(Context& ctx, const Peaks&, const Options& opts) {
  const int64_t out_f = opts.integer("out"), in_f = opts.integer("in"), g = opts.integer("group");
  const int repeats = repeats_option(opts, 5);
  const int64_t n = out_f * in_f;
  const std::vector<float> wv = weight_values(n, 7);
  Tensor w = Tensor::from_host(ctx, Shape{out_f, in_f}, wv, DType::f32, MemCategory::scratch);
  const ops::Int4Weight q = ops::quantize_int4(w, g, MemCategory::scratch);
  const double wbytes = static_cast<double>(q.nbytes());
  std::vector<Result> results;
  auto add = [&](const std::string& name, nlohmann::json sizes, double t, double gbps, double gflops,
                 nlohmann::json extra = nlohmann::json::object()) {
    Result r;
    r.name = name;
    r.sizes = std::move(sizes);
    r.median_s = t;
    r.repeats = repeats;
    r.gbps = gbps;
    r.gflops = gflops;
    r.extra = std::move(extra);
    results.push_back(r);
  };
  const nlohmann::json wsizes = {{"out", out_f}, {"in", in_f}, {"group", g}};
  {
    const double t = median_seconds(ctx, repeats, [&] { ops::quantize_int4(w, g, MemCategory::scratch); });
    add("int4_quantize", wsizes, t, (4.0 * n + wbytes) / t / 1e9, 0, {{"mparams_per_s", n / t / 1e6}});
  }
  Tensor wd = Tensor::empty(ctx, Shape{out_f, in_f}, DType::f32, MemCategory::scratch);
  {
    const double t = median_seconds(ctx, repeats, [&] { ops::dequantize_int4_into(q, wd); });
    add("int4_dequantize f32", wsizes, t, (4.0 * n + wbytes) / t / 1e9, 0);
  }
  const int64_t tokens = opts.integer("tokens");
  for (int64_t rows : {int64_t{1}, int64_t{4}, int64_t{8}, tokens}) {
    Tensor x = Tensor::from_host(ctx, Shape{rows, in_f}, weight_values(rows * in_f, 3 + rows));
    const double flops = 2.0 * rows * n, io = 4.0 * rows * (in_f + out_f);
    nlohmann::json sizes = wsizes;
    sizes["rows"] = rows;
    double fused_t = 0;
    if (rows <= ops::kInt4FusedMaxRows) {
      fused_t = median_seconds(ctx, repeats, [&] { ops::int4_linear(x, q, ops::Int4Path::fused); });
      add("int4_linear fused", sizes, fused_t, (wbytes + io) / fused_t / 1e9, 0,
          {{"gflops", flops / fused_t / 1e9}, {"bytes_per_weight", wbytes / n}});
    }
    if (rows >= 8) {
      const double t = median_seconds(ctx, repeats, [&] { ops::int4_linear(x, q, ops::Int4Path::dequant_gemm); });
      add("int4_linear dequantize + GEMM", sizes, t, 0, flops / t / 1e9);
    }
    const double dense_t = median_seconds(ctx, repeats, [&] { ops::linear(x, wd); });
    nlohmann::json extra = {{"gflops", flops / dense_t / 1e9}};
    if (fused_t > 0) extra["int4_fused_speedup"] = dense_t / fused_t;
    add("dense fp32 linear", sizes, dense_t, (4.0 * n + io) / dense_t / 1e9, 0, extra);
  }
  ops::release_nf4_scratch(ctx);
  {  // reconstruction error, int4 vs NF4, on the same weight (timed: dequantize + the sums; GB/s
     // counts the fp32 weight and the quantized one read)
    double abs_sum = 0, mag = 0;
    const double t4 = median_seconds(ctx, 1, [&] {
      const std::vector<float> back = ops::dequantize_int4(q, MemCategory::scratch).to_host();
      abs_sum = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(double(wv[i]) - back[i]), mag += std::fabs(double(wv[i]));
    });
    add("error int4", wsizes, t4, (4.0 * n + wbytes) / t4 / 1e9, 0,
        {{"mean_abs_error", abs_sum / n}, {"relative_l1_error", abs_sum / mag}, {"bits_per_param", q.bits_per_param()}});
    const ops::NF4Weight nq = ops::quantize_nf4(w, MemCategory::scratch);
    ops::NF4Error e;
    const double tn = median_seconds(ctx, 1, [&] { e = ops::nf4_error(w, nq); });
    add("error nf4", {{"out", out_f}, {"in", in_f}, {"blocksize", 64}}, tn, (4.0 * n + nq.nbytes()) / tn / 1e9, 0,
        {{"mean_abs_error", e.mean_abs()}, {"relative_l1_error", e.relative_l1()},
         {"bits_per_param", nq.bits_per_param()}});
  }
  return results;
}

RegisterBench reg{{"int4",
                   "int4 weights: int4_linear (fused vs dequantize + GEMM vs dense fp32), quantize, "
                   "dequantize, int4 vs NF4 error",
                   {{"out", Key::integer, "8192", "rows of the weight (outputs)"},
                    {"in", Key::integer, "2048", "columns of the weight (inputs)"},
                    {"group", Key::integer, "128", "group size (divides --in)"},
                    {"tokens", Key::integer, "512", "rows of the largest product"}},
                   run_int4}};

}  // namespace
}  // namespace magellano::bench
