// NF4 quantize / dequantize launchers (kernels: cl/nf4.cl; host reference:
// src/quant/nf4_reference.cpp).
#include "magellano/ops/nf4.hpp"

#include <cmath>
#include <map>
#include <mutex>

#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::ops {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Tensor upload_map(Context& ctx, const float* values, int64_t n, MemCategory category) {
  return Tensor::from_host(ctx, Shape{n}, std::vector<float>(values, values + n), DType::f32,
                           category);
}

// The 64 KiB code table of the nested quantization (blockwise_lut of the dynamic map), built
// and uploaded once per context.
Tensor nested_lut(Context& ctx) {
  static std::mutex mutex;
  static auto* tables = new std::map<const Context*, Tensor>;  // never destroyed, like contexts
  std::lock_guard<std::mutex> lock(mutex);
  Tensor& t = (*tables)[&ctx];
  if (!t.defined())
    t = Tensor::from_host_u8(ctx, Shape{65536}, blockwise_lut(dynamic_map_signed().data()),
                             MemCategory::scratch);
  return t;
}

}  // namespace

float absmax_mean(const float* absmax, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += absmax[i];
  return static_cast<float>(sum / static_cast<double>(n));
}

int64_t NF4Weight::blocks() const { return ceil_div(numel(), blocksize); }
int64_t NF4Weight::nested_blocks() const { return ceil_div(blocks(), nested_blocksize); }

uint64_t NF4Weight::nbytes() const {
  uint64_t total = 0;
  for (const Tensor* t : {&packed, &absmax_q, &nested_absmax, &quant_map, &nested_quant_map})
    if (t->defined()) total += t->nbytes();
  return total;
}

double NF4Weight::bits_per_param() const {
  return numel() ? 8.0 * static_cast<double>(nbytes()) / static_cast<double>(numel()) : 0.0;
}

NF4Weight quantize_nf4(const Tensor& w, MemCategory category) {
  if (!w.defined()) throw Error("quantize_nf4: the weight is undefined.");
  if (w.dtype() != DType::f32)
    throw Error(std::string("quantize_nf4: the weight must be f32, got ") + to_string(w.dtype()) +
                ".");
  if (w.numel() == 0) throw Error("quantize_nf4: the weight " + w.shape().str() + " is empty.");
  Context& ctx = w.ctx();
  NF4Weight q;
  q.shape = w.shape();
  const int64_t n = w.numel(), nb = q.blocks(), nn = q.nested_blocks();
  q.packed = Tensor::empty(ctx, Shape{ceil_div(n, 2)}, DType::u8, category);
  q.absmax_q = Tensor::empty(ctx, Shape{nb}, DType::u8, category);
  q.nested_absmax = Tensor::empty(ctx, Shape{nn}, DType::f32, category);
  q.quant_map = upload_map(ctx, nf4_code().data(), 16, category);
  q.nested_quant_map = upload_map(ctx, dynamic_map_signed().data(), 256, category);
  Tensor absmax = Tensor::empty(ctx, Shape{nb}, DType::f32, MemCategory::scratch);

  const float tiny = static_cast<float>(1e-38);
  Launch(ctx, "nf4", "nf4_quantize_blocks").arg(w).arg(q.packed).arg(absmax).arg(q.quant_map)
      .arg(n).arg(tiny).run(nb);
  // The offset (mean of absmax) is summed on the host in fp64, in order: the same bits on every
  // device. The read waits for the kernel above.
  const std::vector<float> am = absmax.to_host();
  q.offset = absmax_mean(am.data(), nb);
  Launch(ctx, "nf4", "nf4_nested_scale").arg(absmax).arg(q.nested_absmax).arg(nb).arg(q.offset)
      .run(nn);
  Launch(ctx, "nf4", "nf4_nested_codes").arg(absmax).arg(q.nested_absmax).arg(nested_lut(ctx))
      .arg(q.absmax_q).arg(nb).arg(q.offset).run(nb);
  return q;
}

void dequantize_nf4_into(const NF4Weight& w, const Tensor& out) {
  if (!w.defined()) throw Error("dequantize_nf4: the NF4 weight is undefined.");
  if (!out.defined() || out.numel() != w.numel() ||
      (out.dtype() != DType::f32 && out.dtype() != DType::f16))
    throw Error("dequantize_nf4: the output must be f32 or f16 with " +
                std::to_string(w.numel()) + " elements (the weight " + w.shape.str() + ").");
  const int64_t n = w.numel();
  const bool f32 = out.dtype() == DType::f32;
  Launch(w.ctx(), "nf4", f32 ? "nf4_dequantize" : "nf4_dequantize_f16")
      .arg(w.packed).arg(w.absmax_q).arg(w.nested_absmax).arg(w.nested_quant_map)
      .arg(w.quant_map).arg(out).arg(n).arg(w.offset)
      .run(ceil_div(n, f32 ? 16 : 2));
}

Tensor dequantize_nf4(const NF4Weight& w, MemCategory category) {
  if (!w.defined()) throw Error("dequantize_nf4: the NF4 weight is undefined.");
  Tensor out = Tensor::empty(w.ctx(), w.shape, DType::f32, category);
  dequantize_nf4_into(w, out);
  return out;
}

Tensor dequantize_absmax(const NF4Weight& w) {
  // On the host (n / 64 values), with the kernels' arithmetic: map[q] * scale, then + offset.
  const std::vector<uint8_t> q = w.absmax_q.to_host_u8();
  const std::vector<float> nested = w.nested_absmax.to_host();
  const std::vector<float> map = w.nested_quant_map.to_host();
  std::vector<float> out(q.size());
  for (size_t b = 0; b < q.size(); ++b) {
    const float scaled = map[q[b]] * nested[b / w.nested_blocksize];
    out[b] = scaled + w.offset;
  }
  return Tensor::from_host(w.ctx(), Shape{static_cast<int64_t>(out.size())}, out);
}

NF4Error& NF4Error::operator+=(const NF4Error& o) {
  n += o.n;
  abs_sum += o.abs_sum;
  mag_sum += o.mag_sum;
  rel_sum += o.rel_sum;
  return *this;
}

NF4Error nf4_error(const Tensor& w, const NF4Weight& q) {
  if (!w.defined() || w.dtype() != DType::f32 || w.numel() != q.numel())
    throw Error("nf4_error: the weight must be f32 with " + std::to_string(q.numel()) +
                " elements (the NF4 weight " + q.shape.str() + ").");
  const int64_t n = q.numel(), nb = q.blocks();
  Tensor sums = Tensor::empty(q.ctx(), Shape{nb, 3}, DType::f32, MemCategory::scratch);
  Launch(q.ctx(), "nf4", "nf4_error_blocks").arg(w).arg(q.packed).arg(q.absmax_q)
      .arg(q.nested_absmax).arg(q.nested_quant_map).arg(q.quant_map).arg(sums).arg(n)
      .arg(q.offset).run(nb);
  const std::vector<float> s = sums.to_host();
  NF4Error e;
  e.n = n;
  for (int64_t b = 0; b < nb; ++b) {
    e.abs_sum += s[3 * b];
    e.mag_sum += s[3 * b + 1];
    e.rel_sum += s[3 * b + 2];
  }
  return e;
}

NF4Weight nf4_from_host(Context& ctx, const Shape& shape, const std::vector<uint8_t>& packed,
                        const std::vector<uint8_t>& absmax_q,
                        const std::vector<float>& nested_absmax, float offset,
                        const std::vector<float>& quant_map,
                        const std::vector<float>& nested_quant_map, const std::string& what,
                        MemCategory category) {
  NF4Weight q;
  q.shape = shape;
  const int64_t n = shape.numel();
  const auto need = [&](const char* part, size_t got, int64_t want) {
    if (static_cast<int64_t>(got) != want)
      throw Error(what + ": " + part + " has " + std::to_string(got) + " values but an NF4 " +
                  "weight of shape " + shape.str() + " needs " + std::to_string(want) +
                  ". The file is corrupt or was quantized differently (blocksize 64, nested 256).");
  };
  if (n <= 0) throw Error(what + ": the NF4 weight's shape " + shape.str() + " is empty.");
  need("the packed data", packed.size(), ceil_div(n, 2));
  need("absmax", absmax_q.size(), q.blocks());
  need("nested_absmax", nested_absmax.size(), q.nested_blocks());
  need("quant_map", quant_map.size(), 16);
  need("nested_quant_map", nested_quant_map.size(), 256);
  if (!std::isfinite(offset)) throw Error(what + ": the nested offset is not a finite number.");
  q.packed = Tensor::from_host_u8(ctx, Shape{ceil_div(n, 2)}, packed, category);
  q.absmax_q = Tensor::from_host_u8(ctx, Shape{q.blocks()}, absmax_q, category);
  q.nested_absmax = Tensor::from_host(ctx, Shape{q.nested_blocks()}, nested_absmax, DType::f32,
                                      category);
  q.quant_map = Tensor::from_host(ctx, Shape{16}, quant_map, DType::f32, category);
  q.nested_quant_map = Tensor::from_host(ctx, Shape{256}, nested_quant_map, DType::f32, category);
  q.offset = offset;
  return q;
}

}  // namespace magellano::ops
