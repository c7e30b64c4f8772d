#include "ssd_plan.hpp"

#include <algorithm>

#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops {

int ssd_default_chunk(const Context&) { return kSsdDefaultChunk; }

int64_t ssd_chunk_for_length(int64_t chunk, int64_t l) { return std::min(chunk, (l + 7) / 8 * 8); }

SsdWork ssd_scan_work(int64_t b, int64_t l, int64_t h, int64_t p, int64_t g, int64_t n, int64_t chunk) {
  SsdWork w;
  const double np = double(n) * p;
  for (int64_t t0 = 0; t0 < l; t0 += chunk) {
    const double q = double(std::min(chunk, l - t0)), tri = q * (q + 1) / 2;
    w.fwd_flops += b * (h * (4 * q * np + 2 * np + 2 * tri * p + 2 * q * p) + g * 2 * tri * n);
    w.bwd_flops += b * (h * (8 * q * np + 4 * np + 4 * tri * p + 4 * tri * n + 4 * q * n) + g * 2 * tri * n);
  }
  const double blhp = double(b) * l * h * p, blh = double(b) * l * h, blgn = double(b) * l * g * n;
  w.fwd_bytes = 4 * (2 * blhp + blh + 2 * blgn);
  w.bwd_bytes = 4 * (3 * blhp + 2 * blh + 4 * blgn);
  return w;
}

namespace detail {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The widest vector among `widths` that divides both P and N.
int64_t widest_dividing(std::initializer_list<int64_t> widths, int64_t p, int64_t n) {
  for (int64_t v : widths)
    if (p % v == 0 && n % v == 0) return v;
  return 1;
}

}  // namespace

int64_t ssd_local_floats(int64_t chunk, int64_t vec, int64_t cols, int64_t items, int64_t p, int64_t n) {
  const int64_t qcp = round_up(chunk, vec);
  return 4 * qcp + chunk * qcp + items + (std::max(n, p) + chunk) * cols;  // ssd_bwd_dx, the largest
}

BuildOptions SsdPlan::chunk_knobs(const SsdDims& d) const {
  return BuildOptions()
      .define("CHUNK", chunk)
      .define("HEADDIM", d.p)
      .define("DSTATE", d.n)
      .define("ROWS", rows)
      .define("ITEMS", items)
      .define("VEC", vec)
      .define("CT", cols);
}

BuildOptions SsdPlan::scan_knobs() const { return BuildOptions().define("SVEC", state_vec); }

SsdPlan plan_ssd(const Context& ctx, const SsdDims& d, const SsdOptions& opt) {
  if (opt.chunk < 0) throw Error("ssd_scan: chunk must be positive (or 0 for the device's default), got " +
                                 std::to_string(opt.chunk) + ".");
  const SsdTiles& t = opt.tiles;
  if (t.rows < 0 || t.items < 0 || t.vec < 0 || t.cols < 0)
    throw Error("ssd_scan: tile knobs must be positive (or 0 for the default).");
  SsdPlan plan;
  const bool gpu = ctx.device().type == "gpu";
  plan.group_per_chunk = opt.mapping == SsdMapping::group_per_chunk ||
                         (opt.mapping == SsdMapping::automatic && gpu);
  // A chunk longer than the sequence changes nothing but the kernels' local arrays.
  const int64_t want = opt.chunk ? opt.chunk : ssd_default_chunk(ctx);
  const int64_t max_wg = static_cast<int64_t>(ctx.device().max_work_group_size);
  const int64_t local_floats = static_cast<int64_t>(ctx.device().local_mem_bytes / 4);
  // The chunk changes results only by rounding, so a chunk whose tiles do not fit the device's
  // local memory (e.g. Hugging Face's default 256 on a GPU with 48 KiB) is halved until they do.
  for (int64_t chunk = ssd_chunk_for_length(want, d.l);; chunk = std::max<int64_t>(1, round_up(chunk / 2, 8))) {
    plan.chunk = chunk;
    if (plan.group_per_chunk) {
      plan.rows = t.rows ? t.rows : 1;
      plan.vec = t.vec ? t.vec : widest_dividing({4, 2, 1}, d.p, d.n);
      plan.items = t.items ? t.items : std::min(max_wg, (plan.chunk + plan.rows - 1) / plan.rows);
      plan.cols = t.cols ? t.cols : 32;
    } else {
      plan.rows = t.rows ? t.rows : 4;
      plan.vec = t.vec ? t.vec : widest_dividing({16, 8, 4, 2, 1}, d.p, d.n);
      plan.items = t.items ? t.items : 1;
      plan.cols = t.cols ? t.cols : 64;
    }
    if (plan.vec != 1 && plan.vec != 2 && plan.vec != 4 && plan.vec != 8 && plan.vec != 16)
      throw Error("ssd_scan: vector width must be 1, 2, 4, 8 or 16, got " + std::to_string(plan.vec) + ".");
    if (d.p % plan.vec || d.n % plan.vec)
      throw Error("ssd_scan: vector width " + std::to_string(plan.vec) + " must divide P = " +
                  std::to_string(d.p) + " and N = " + std::to_string(d.n) + ".");
    plan.cols = round_up(plan.cols, plan.vec);
    // Halve the staged tile's width until the kernels' local memory fits the device.
    while (ssd_local_floats(plan.chunk, plan.vec, plan.cols, plan.items, d.p, d.n) > local_floats &&
           !t.cols && plan.cols > plan.vec)
      plan.cols = std::max(plan.vec, round_up(plan.cols / 2, plan.vec));
    if (ssd_local_floats(plan.chunk, plan.vec, plan.cols, plan.items, d.p, d.n) <= local_floats) break;
    if (plan.chunk <= 8) {
      const int64_t need = ssd_local_floats(plan.chunk, plan.vec, plan.cols, plan.items, d.p, d.n);
      throw Error("ssd_scan: P = " + std::to_string(d.p) + ", N = " + std::to_string(d.n) + " need " +
                  std::to_string(need * 4) + " bytes of local memory even at chunk " + std::to_string(plan.chunk) +
                  "; the device has " + std::to_string(local_floats * 4) + ". Use a smaller tile width (cols).");
    }
  }
  plan.nc = (d.l + plan.chunk - 1) / plan.chunk;
  if (plan.items > max_wg)
    throw Error("ssd_scan: " + std::to_string(plan.items) + " work-items per group exceed this device's " +
                std::to_string(max_wg) + ".");
  // Contiguous elements per work-item of the state passes and the head sums: a vector's worth on
  // CPUs; one on GPUs, where neighbouring work-items make the accesses contiguous.
  plan.state_vec = plan.group_per_chunk ? 1 : widest_dividing({16, 8, 4, 2, 1}, d.n, d.n);
  return plan;
}

}  // namespace detail
}  // namespace magellano::ops
