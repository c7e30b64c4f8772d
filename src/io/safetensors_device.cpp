#include "magellano/io/safetensors_device.hpp"

#include <CL/cl.h>

#include <cmath>
#include <optional>

#include "magellano/runtime/error.hpp"

namespace magellano::io {

namespace {
StDType st_dtype_of(DType t) {
  switch (t) {
    case DType::f32: return StDType::F32;
    case DType::f16: return StDType::F16;
    case DType::u8: return StDType::U8;
    case DType::i32: return StDType::I32;
  }
  throw Error("to_st: unknown tensor dtype.");
}
// The first non-finite value among n, as (index, "NaN" / "Inf"), by f32 values or f16 bits.
std::optional<std::pair<size_t, const char*>> first_non_finite(const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return std::make_pair(i, std::isnan(v[i]) ? "NaN" : "Inf");
  return std::nullopt;
}
std::optional<std::pair<size_t, const char*>> first_non_finite_f16(const uint8_t* bytes, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
    if ((h & 0x7c00) == 0x7c00) return std::make_pair(i, (h & 0x03ff) ? "NaN" : "Inf");
  }
  return std::nullopt;
}

void fail_non_finite(const std::string& what, const std::optional<std::pair<size_t, const char*>>& bad, size_t n) {
  if (!bad) return;
  throw Error(what + "element " + std::to_string(bad->first) + " of " + std::to_string(n) + " is " + bad->second +
              "; weights must be finite numbers. The file is damaged (or was saved from a diverged run): use an "
              "earlier checkpoint.");
}

}  // namespace

void require_finite(const std::vector<float>& values, const std::string& what) {
  fail_non_finite(what + ": ", first_non_finite(values.data(), values.size()), values.size());
}

StTensor to_st(const Tensor& t) {
  if (!t.defined()) throw Error("to_st: the tensor is undefined.");
  StTensor out{st_dtype_of(t.dtype()), t.shape().dims(), std::vector<uint8_t>(t.nbytes())};
  if (t.nbytes() > 0)
    check_cl(clEnqueueReadBuffer(t.ctx().queue(), t.buffer(), CL_TRUE,
                                 t.offset() * dtype_size(t.dtype()), t.nbytes(), out.bytes.data(),
                                 0, nullptr, nullptr),
             "clEnqueueReadBuffer", "to_st");
  return out;
}

namespace {

// Floats read from a file into an f32 or f16 tensor (rounded to nearest), refusing non-finite values.
void write_floats(const std::string& where, const std::vector<float>& v, const Tensor& dst) {
  fail_non_finite(where, first_non_finite(v.data(), v.size()), v.size());
  Tensor t = dst;  // copy_from_host is non-const on the handle; the buffer is shared
  if (dst.dtype() == DType::f32) {
    t.copy_from_host(v.data(), v.size() * sizeof(float));
    return;
  }
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  t.copy_from_host(h.data(), h.size() * 2);
}

}  // namespace

void load_into(const SafetensorsReader& reader, const std::string& name, const Tensor& dst) {
  const std::string where = "loading '" + name + "' from " + reader.path().string() + ": ";
  const std::vector<int64_t> shape = reader.shape(name);  // throws if absent
  if (shape != dst.shape().dims())
    throw Error(where + "stored shape " + st_shape_str(shape) + " differs from the model's " +
                st_shape_str(dst.shape().dims()) + ". Does the checkpoint match the model config?");
  const StDType src = reader.dtype(name);
  const bool floating = src == StDType::F32 || src == StDType::F16 || src == StDType::BF16;
  Tensor t = dst;  // copy_from_host is non-const on the handle; the buffer is shared
  if (dst.dtype() == DType::f16 && src == StDType::F16) {
    const StTensor s = reader.read(name);
    fail_non_finite(where, first_non_finite_f16(s.bytes.data(), s.bytes.size() / 2), s.bytes.size() / 2);
    t.copy_from_host(s.bytes.data(), s.bytes.size());
  } else if ((dst.dtype() == DType::f32 || dst.dtype() == DType::f16) && floating) {
    write_floats(where, reader.read_f32(name), dst);
  } else if ((dst.dtype() == DType::u8 && src == StDType::U8) ||
             (dst.dtype() == DType::i32 && src == StDType::I32)) {
    const StTensor s = reader.read(name);
    t.copy_from_host(s.bytes.data(), s.bytes.size());
  } else {
    throw Error(where + "stored dtype " + st_dtype_name(src) + " cannot be loaded into a " +
                to_string(dst.dtype()) + " tensor.");
  }
}

void load_into(const SafetensorsSet& weights, const std::string& name, const Tensor& dst) {
  load_into(weights.reader(name), name, dst);
}

void load_rows_into(const SafetensorsSet& weights, const std::string& name, int64_t row_begin, int64_t row_end,
                    const Tensor& dst) {
  const std::string where = "loading rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) + ") of '" +
                            name + "' from " + weights.reader(name).path().string() + ": ";
  const std::vector<int64_t> shape = weights.shape(name);  // throws if absent
  const int64_t cols = shape.empty() ? 1 : shape.back();
  if (dst.dtype() != DType::f32 && dst.dtype() != DType::f16)
    throw Error(where + "a " + std::string(to_string(dst.dtype())) + " tensor cannot take floating-point rows.");
  if (dst.shape().ndim() < 1 || dst.shape().dims().back() != cols || (row_end - row_begin) * cols != dst.numel())
    throw Error(where + "stored shape " + st_shape_str(shape) + " does not give the model's " +
                st_shape_str(dst.shape().dims()) + ". Does the checkpoint match its config?");
  write_floats(where, weights.read_rows_f32(name, row_begin, row_end), dst);
}

}  // namespace magellano::io
