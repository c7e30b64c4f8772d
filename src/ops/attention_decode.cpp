#include "magellano/ops/attention_decode.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "check.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/mapping.hpp"

namespace magellano::ops {
namespace {

// The pool and table sizes: num_blocks, block_size, kv heads, d, rows, max blocks per row.
struct Pool {
  int64_t nb, bs, kvh, d, b, mb;
};

Pool check_pool(const char* op, const Tensor& k_pool, const Tensor& v_pool, const Tensor& table,
                const Tensor& per_row, const char* per_row_name) {
  using detail::require_dtype;
  using detail::require_f32;
  require_f32(k_pool, op, "k_pool");
  require_f32(v_pool, op, "v_pool");
  require_dtype(table, DType::i32, op, "block_table");
  require_dtype(per_row, DType::i32, op, per_row_name);
  if (k_pool.shape().ndim() != 4 || v_pool.shape() != k_pool.shape())
    throw Error(std::string(op) + ": k_pool and v_pool must both be (num_blocks, block_size, kv_heads, d), got " +
                k_pool.shape().str() + " and " + v_pool.shape().str() + ".");
  if (table.shape().ndim() != 2 || per_row.shape() != Shape{table.size(0)})
    throw Error(std::string(op) + ": block_table must be (B, max_blocks_per_row) and " + per_row_name +
                " (B); got " + table.shape().str() + " and " + per_row.shape().str() + ".");
  const Pool p{k_pool.size(0), k_pool.size(1), k_pool.size(2), k_pool.size(3), table.size(0), table.size(1)};
  if (p.d % 8 || p.d < 8 || p.d > 256)
    throw Error(std::string(op) + ": head width d = " + std::to_string(p.d) +
                " is not supported; use a multiple of 8 from 8 to 256.");
  return p;
}

// The kernels' vector width: float4 on GPUs (one 16-byte load per item and vector; d = 64 makes 16
// column vectors, so attn_decode's 64 items sum v rows in 4 position groups), the widest that
// divides d on CPUs.
int64_t widest_vec(const Context& ctx, int64_t d) {
  if (kernel_mapping(ctx) != KernelMapping::cpu) return d % 4 == 0 ? 4 : 1;
  for (int64_t w : {16, 8, 4})
    if (d % w == 0) return w;
  return 1;
}

}  // namespace

void kv_cache_write(const Tensor& k_pool, const Tensor& v_pool, const Tensor& k, const Tensor& v,
                    const Tensor& block_table, const Tensor& positions) {
  const Pool p = check_pool("kv_cache_write", k_pool, v_pool, block_table, positions, "positions");
  detail::require_f32(k, "kv_cache_write", "k");
  detail::require_f32(v, "kv_cache_write", "v");
  if (k.shape().ndim() != 4 || v.shape() != k.shape() || k.size(0) != p.b || k.size(2) != p.kvh ||
      k.size(3) != p.d)
    throw Error("kv_cache_write: k and v must be (B, T, kv_heads, d) = (" + std::to_string(p.b) + ", T, " +
                std::to_string(p.kvh) + ", " + std::to_string(p.d) + ") to match the pool and table; got " +
                k.shape().str() + " and " + v.shape().str() + ".");
  Context& ctx = k.ctx();
  const int64_t vec = widest_vec(ctx, p.d), t = k.size(1);
  Launch(ctx, "attention_decode", "kv_cache_write", BuildOptions().define("HEADDIM", p.d).define("VEC", vec))
      .arg(k_pool).arg(v_pool).arg(k).arg(v).arg(block_table).arg(positions)
      .arg(p.b).arg(t).arg(p.kvh).arg(p.bs).arg(p.mb).arg(p.nb)
      .run(p.b * t * p.kvh * (p.d / vec), default_local_size(ctx));
}

Tensor attention_decode(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                        const Tensor& lengths, const AttentionDecodeOptions& opt) {
  const Pool p = check_pool("attention_decode", k_pool, v_pool, block_table, lengths, "lengths");
  detail::require_f32(q, "attention_decode", "q");
  if (q.shape().ndim() != 3 || q.size(0) != p.b || q.size(2) != p.d)
    throw Error("attention_decode: q must be (B, heads, d) = (" + std::to_string(p.b) + ", heads, " +
                std::to_string(p.d) + ") to match the pool and table; got " + q.shape().str() + ".");
  const int64_t h = q.size(1);
  if (h < 1 || h % p.kvh)
    throw Error("attention_decode: the " + std::to_string(p.kvh) + " kv heads must divide the " + std::to_string(h) +
                " query heads.");
  if (opt.split < 0 || opt.max_length < 0 || !(opt.scale >= 0.0f) || !std::isfinite(opt.scale))
    throw Error("attention_decode: split, max_length and scale must not be negative (0: the default).");
  Context& ctx = q.ctx();
  const bool cpu = kernel_mapping(ctx) == KernelMapping::cpu;
  const int64_t capacity = p.mb * p.bs;
  const int64_t max_len = std::max<int64_t>(1, std::min(capacity, opt.max_length ? opt.max_length : capacity));
  const int64_t split = opt.split ? opt.split : cpu ? max_len : 256;
  const int64_t ns = (max_len + split - 1) / split;
  const float scale = opt.scale > 0.0f ? opt.scale : static_cast<float>(1.0 / std::sqrt(double(p.d)));
  // GPUs: 64 work-items per group, a tile of 128 positions; CPUs: one work-item, wide vectors.
  const int64_t items = cpu ? 1 : 64, tile = cpu ? 64 : 128, vec = widest_vec(ctx, p.d);
  const BuildOptions knobs =
      BuildOptions().define("HEADDIM", p.d).define("VEC", vec).define("DITEMS", items).define("DTILE", tile);
  Tensor out = Tensor::empty(ctx, q.shape());
  Tensor part = ns == 1 ? out : Tensor::empty(ctx, Shape{p.b, h, ns, p.d + 2}, DType::f32, MemCategory::scratch);
  Launch(ctx, "attention_decode", "attn_decode", knobs)
      .arg(q).arg(k_pool).arg(v_pool).arg(block_table).arg(lengths).arg(part)
      .arg(h).arg(p.kvh).arg(p.bs).arg(p.mb).arg(p.nb).arg(ns).arg(split).arg(scale)
      .run(p.b * h * ns * items, items);
  if (ns > 1)
    Launch(ctx, "attention_decode", "attn_decode_combine", knobs)
        .arg(part).arg(lengths).arg(out).arg(p.b).arg(h).arg(p.mb).arg(p.bs).arg(ns).arg(split)
        .run(p.b * h * p.d, default_local_size(ctx));
  return out;
}

}  // namespace magellano::ops
