#include "attention_plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "magellano/ops/mapping.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops {

AttentionWork attention_work(int64_t b, int64_t l, int64_t heads, int64_t kv_heads, int64_t d, bool causal) {
  AttentionWork w;
  const double ll = double(l) * double(l);
  w.fwd_flops = 4.0 * double(b) * double(heads) * ll * double(d) * (causal ? 0.5 : 1.0);
  w.bwd_flops = 2.5 * w.fwd_flops;
  const double q = double(b) * l * heads * d, kv = double(b) * l * kv_heads * d, lse = double(b) * heads * l;
  w.fwd_bytes = 4 * (q + 2 * kv + q + lse);              // q, k, v in; out, lse out
  w.bwd_bytes = 4 * (3 * q + 2 * kv + lse + q + 2 * kv);  // q, out, dout, k, v, lse in; dq, dk, dv out
  return w;
}

namespace detail {
namespace {

// The widest vector among `widths` that divides every value.
int64_t widest_dividing(std::initializer_list<int64_t> widths, std::initializer_list<int64_t> values) {
  for (int64_t w : widths) {
    bool ok = true;
    for (int64_t v : values) ok &= v % w == 0;
    if (ok) return w;
  }
  return 1;
}

const char* base_kernel_name(AttentionKernel k) {
  switch (k) {
    case AttentionKernel::fwd: return "attn_fwd";
    case AttentionKernel::dq: return "attn_bwd_dq";
    case AttentionKernel::dkdv: return "attn_bwd_dkdv";
  }
  return "?";
}

// Register tiles: the streamed tile's width, a multiple of 4 dividing d, at most `at_most` (0 if none).
int64_t register_tile_cols(int64_t d, int64_t at_most) {
  for (int64_t c = at_most - at_most % 4; c >= 4; c -= 4)
    if (d % c == 0) return c;
  return 0;
}

// Register tiles for one kernel from the options (0 = default). Default tiles that do not fit the
// device's local memory shrink: the streamed tile's columns to the next valid width down to 8,
// then the block's rows (halved, down to 4), then the columns down to 4; asked-for tiles are not
// changed.
AttentionTileKnobs choose_register_tiles(AttentionKernel kernel, int64_t block, int64_t cols,
                                         const AttentionTileKnobs& defaults, const AttentionDims& d,
                                         int64_t local_floats) {
  AttentionTileKnobs t;
  t.rows = 4;
  t.block = block ? block : defaults.block;
  t.cols = cols ? cols : register_tile_cols(d.d, defaults.cols);
  auto fits = [&] { return attention_local_floats(kernel, d.d, t, true) <= local_floats; };
  while (!fits()) {
    if (!cols && t.cols > 8) t.cols = register_tile_cols(d.d, t.cols - 4);
    else if (!block && t.block > 4) t.block = std::max<int64_t>(4, t.block / 2 / 4 * 4);
    else if (!cols && t.cols > 4) t.cols = register_tile_cols(d.d, t.cols - 4);
    else
      throw Error("attention: head width d = " + std::to_string(d.d) + " needs " +
                  std::to_string(attention_local_floats(kernel, d.d, t, true) * 4) + " bytes of local memory in " +
                  base_kernel_name(kernel) + "_rt with tiles of " + std::to_string(t.block) + " x " +
                  std::to_string(t.cols) + "; the device has " + std::to_string(local_floats * 4) +
                  ". Use smaller tiles.");
  }
  t.col_groups = t.cols / 4;
  return t;
}

// One kernel's tiles from the options (0 = default). Default tiles that do not fit the device's
// local memory are halved: the streamed tile's columns down to 16, then the block's rows (keeping
// whole work-items), then the columns again down to a vector; asked-for tiles are not changed.
AttentionTileKnobs choose_tiles(AttentionKernel kernel, int64_t block, int64_t cols, int64_t rows,
                                const AttentionTileKnobs& defaults, bool one_item, const AttentionDims& d,
                                int64_t vec, int64_t local_floats) {
  AttentionTileKnobs t;
  t.block = block ? block : defaults.block;
  t.cols = cols ? cols : defaults.cols;
  const bool rows_follow = one_item && !rows;  // one work-item: its rows are the block's
  t.rows = rows ? rows : rows_follow ? t.block : defaults.rows;
  auto fits = [&] { return attention_local_floats(kernel, d.d, t, false) <= local_floats; };
  while (!fits()) {
    if (!cols && t.cols > 16) t.cols /= 2;
    else if (!block && (rows_follow || (t.block / 2) % t.rows == 0) && t.block / 2 >= 1) {
      t.block /= 2;
      if (rows_follow) t.rows = t.block;
    } else if (!cols && t.cols > vec) t.cols /= 2;
    else
      throw Error("attention: head width d = " + std::to_string(d.d) + " needs " +
                  std::to_string(attention_local_floats(kernel, d.d, t, false) * 4) + " bytes of local memory in " +
                  base_kernel_name(kernel) + " with tiles of " + std::to_string(t.block) + " x " +
                  std::to_string(t.cols) + "; the device has " + std::to_string(local_floats * 4) +
                  ". Use smaller tiles.");
  }
  return t;
}

void check_tiles(AttentionKernel kernel, const AttentionTileKnobs& t, int64_t vec, int64_t max_wg) {
  const std::string k = base_kernel_name(kernel);
  if (t.block % t.rows)
    throw Error("attention: " + std::to_string(t.rows) + " rows per work-item must divide the " +
                std::to_string(t.block) + " rows of a block (" + k + ").");
  if (t.cols % vec)
    throw Error("attention: vector width " + std::to_string(vec) + " must divide the streamed tile's " +
                std::to_string(t.cols) + " columns (" + k + ").");
  if (t.items() > max_wg)
    throw Error("attention: " + std::to_string(t.items()) + " work-items per group exceed this device's " +
                std::to_string(max_wg) + " (" + k + ").");
}

}  // namespace

// Register tiles: every block and tile a multiple of 4, 4-row groups, and the streamed tile's
// columns dividing d (each work-item's share of an output row is whole float4s).
void check_register_tiles(AttentionKernel kernel, const AttentionTileKnobs& t, int64_t d, int64_t max_wg) {
  const std::string k = std::string(base_kernel_name(kernel)) + "_rt";
  if (t.block % 4 || t.cols % 4)
    throw Error("attention: register tiles need blocks and tiles that are multiples of 4, got " +
                std::to_string(t.block) + " x " + std::to_string(t.cols) + " (" + k + ").");
  if (d % t.cols)
    throw Error("attention: with register tiles the streamed tile's " + std::to_string(t.cols) +
                " columns must divide the head width " + std::to_string(d) + " (" + k + ").");
  if (t.items() > max_wg)
    throw Error("attention: " + std::to_string(t.items()) + " work-items per group exceed this device's " +
                std::to_string(max_wg) + " (" + k + ").");
}

int64_t attention_local_floats(AttentionKernel kernel, int64_t d, const AttentionTileKnobs& t, bool register_tiles) {
  if (register_tiles) {  // block rows x streamed columns (queries x keys; keys x queries for dkdv)
    const int64_t rows = t.block, cols = t.cols;
    switch (kernel) {
      case AttentionKernel::fwd: return d * rows + d * cols + cols * rows + rows * (cols / 4);
      case AttentionKernel::dq: return 2 * d * rows + 2 * d * cols + cols * rows;
      case AttentionKernel::dkdv: return 2 * d * rows + 2 * d * cols + 2 * cols * rows + 2 * ((cols + 3) / 4 * 4);
    }
    return 0;
  }
  const int64_t rstride = d + 1;
  switch (kernel) {
    case AttentionKernel::fwd: return t.block * rstride + d * t.cols + t.block * (t.cols + 1);
    case AttentionKernel::dq: return 2 * t.block * rstride + 2 * d * t.cols + t.block * (t.cols + 1);
    case AttentionKernel::dkdv: return 2 * t.block * rstride + 2 * d * t.cols + t.block * (t.cols + 1) + 2 * t.cols;
  }
  return 0;
}

BuildOptions AttentionPlan::knobs(const AttentionDims& d, AttentionKernel kernel) const {
  const AttentionTileKnobs& t = kernel == AttentionKernel::fwd ? fwd : kernel == AttentionKernel::dq ? dq : dkdv;
  const bool keys_are_rows = kernel == AttentionKernel::dkdv;
  BuildOptions o = BuildOptions()
                       .define("HEADDIM", d.d)
                       .define("BQ", keys_are_rows ? t.cols : t.block)
                       .define("BK", keys_are_rows ? t.block : t.cols)
                       .define("ROWS", t.rows)
                       .define("VEC", vec);
  if (group_per_block) o.define("ROWS_INNER");  // register tiles of a few rows (cl/attention.cl)
  if (register_tiles) o.define("CG", t.col_groups);
  return o;
}

const char* AttentionPlan::kernel_name(AttentionKernel kernel) const {
  if (!register_tiles) return base_kernel_name(kernel);
  switch (kernel) {
    case AttentionKernel::fwd: return "attn_fwd_rt";
    case AttentionKernel::dq: return "attn_bwd_dq_rt";
    case AttentionKernel::dkdv: return "attn_bwd_dkdv_rt";
  }
  return "?";
}

// The mapping an `automatic` call runs: MAGELLANO_ATTENTION=group|item|tiles when set, else by the
// device's kernel mapping (gpu -> group_per_block, cpu -> item_per_block).
AttentionMapping automatic_mapping(const Context& ctx) {
  if (const char* env = std::getenv("MAGELLANO_ATTENTION"); env && *env) {
    const std::string v = env;
    if (v == "group") return AttentionMapping::group_per_block;
    if (v == "item") return AttentionMapping::item_per_block;
    if (v == "tiles") return AttentionMapping::register_tiles;
    throw Error("MAGELLANO_ATTENTION must be group, item or tiles, got '" + v + "'.");
  }
  return kernel_mapping(ctx) == KernelMapping::gpu ? AttentionMapping::group_per_block
                                                   : AttentionMapping::item_per_block;
}

AttentionPlan plan_attention(const Context& ctx, const AttentionDims& d, const AttentionOptions& options) {
  AttentionOptions opt = options;
  if (opt.mapping == AttentionMapping::automatic) opt.mapping = automatic_mapping(ctx);
  for (const AttentionTiles* t : {&opt.tiles, &opt.backward_tiles})
    if (t->block_q < 0 || t->block_k < 0 || t->rows < 0 || t->vec < 0)
      throw Error("attention: tile knobs must be positive (or 0 for the default).");
  AttentionPlan plan;
  const int64_t max_wg = static_cast<int64_t>(ctx.device().max_work_group_size);
  const int64_t local_floats = static_cast<int64_t>(ctx.device().local_mem_bytes / 4);
  if (opt.mapping == AttentionMapping::register_tiles) {
    // Defaults: 64-query blocks with key tiles of 32 (forward), 32 x 32 (backward: both operands
    // of two products staged per kernel, which must fit 48 KiB).
    plan.register_tiles = true;
    plan.vec = 4;
    const AttentionTiles &t = opt.tiles, &bt = opt.backward_tiles;
    for (const AttentionTiles* x : {&t, &bt}) {
      if (x->rows && x->rows != 4)
        throw Error("attention: register tiles hold 4 rows per work-item, got rows = " + std::to_string(x->rows) + ".");
      if (x->vec && x->vec != 4)
        throw Error("attention: register tiles use float4 vectors, got vector width " + std::to_string(x->vec) + ".");
    }
    plan.fwd = choose_register_tiles(AttentionKernel::fwd, t.block_q, t.block_k, {64, 32}, d, local_floats);
    plan.dq = choose_register_tiles(AttentionKernel::dq, bt.block_q, bt.block_k, {32, 32}, d, local_floats);
    plan.dkdv = choose_register_tiles(AttentionKernel::dkdv, bt.block_k, bt.block_q, {32, 32}, d, local_floats);
    check_register_tiles(AttentionKernel::fwd, plan.fwd, d.d, max_wg);
    check_register_tiles(AttentionKernel::dq, plan.dq, d.d, max_wg);
    check_register_tiles(AttentionKernel::dkdv, plan.dkdv, d.d, max_wg);
    return plan;
  }
  plan.group_per_block = opt.mapping == AttentionMapping::group_per_block;
  const bool one_item = !plan.group_per_block;
  // Defaults. Group per block: a row per work-item, 64-row blocks, key tiles of 32 (forward) and
  // 64 (backward, halved to fit 48 KiB), float4 columns. Item per block: one work-item per block
  // of 8 (forward) or 16 (backward) rows, tiles of 16, the widest vector.
  const AttentionTileKnobs fwd_default = plan.group_per_block ? AttentionTileKnobs{64, 32, 1} : AttentionTileKnobs{8, 16, 8};
  const AttentionTileKnobs bwd_default = plan.group_per_block ? AttentionTileKnobs{64, 64, 1} : AttentionTileKnobs{16, 16, 16};
  const AttentionTiles &t = opt.tiles, &bt = opt.backward_tiles;
  const int64_t vec_asked = t.vec ? t.vec : bt.vec;
  if (vec_asked && bt.vec && t.vec && bt.vec != t.vec)
    throw Error("attention: the forward and backward tiles must use one vector width.");
  // The widest vector that divides d and every streamed tile's width that was asked for.
  auto or_d = [&](int64_t cols) { return cols ? cols : d.d; };
  const std::initializer_list<int64_t> widths = {d.d, or_d(t.block_k), or_d(bt.block_k), or_d(bt.block_q)};
  plan.vec = vec_asked ? vec_asked
             : plan.group_per_block ? widest_dividing({4, 2, 1}, widths)
                                    : widest_dividing({16, 8, 4, 2, 1}, widths);
  if (plan.vec != 1 && plan.vec != 2 && plan.vec != 4 && plan.vec != 8 && plan.vec != 16)
    throw Error("attention: vector width must be 1, 2, 4, 8 or 16, got " + std::to_string(plan.vec) + ".");
  if (d.d % plan.vec)
    throw Error("attention: vector width " + std::to_string(plan.vec) + " must divide the head width " +
                std::to_string(d.d) + ".");
  plan.fwd = choose_tiles(AttentionKernel::fwd, t.block_q, t.block_k, t.rows, fwd_default, one_item, d, plan.vec,
                          local_floats);
  plan.dq = choose_tiles(AttentionKernel::dq, bt.block_q, bt.block_k, bt.rows, bwd_default, one_item, d, plan.vec,
                         local_floats);
  plan.dkdv = choose_tiles(AttentionKernel::dkdv, bt.block_k, bt.block_q, bt.rows, bwd_default, one_item, d,
                           plan.vec, local_floats);
  check_tiles(AttentionKernel::fwd, plan.fwd, plan.vec, max_wg);
  check_tiles(AttentionKernel::dq, plan.dq, plan.vec, max_wg);
  check_tiles(AttentionKernel::dkdv, plan.dkdv, plan.vec, max_wg);
  return plan;
}

}  // namespace detail
}  // namespace magellano::ops
