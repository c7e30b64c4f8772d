#include "magellano/io/safetensors_device.hpp"

#include <CL/cl.h>

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
}  // namespace

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

void load_into(const SafetensorsReader& reader, const std::string& name, const Tensor& dst) {
  const std::string where = "loading '" + name + "' from " + reader.path().string() + ": ";
  const std::vector<int64_t> shape = reader.shape(name);  // throws if absent
  if (shape != dst.shape().dims())
    throw Error(where + "stored shape " + st_shape_str(shape) + " differs from the model's " +
                st_shape_str(dst.shape().dims()) + ". Does the checkpoint match the model config?");
  const StDType src = reader.dtype(name);
  const bool floating = src == StDType::F32 || src == StDType::F16 || src == StDType::BF16;
  Tensor t = dst;  // copy_from_host is non-const on the handle; the buffer is shared
  if (dst.dtype() == DType::f32 && floating) {
    const std::vector<float> v = reader.read_f32(name);
    t.copy_from_host(v.data(), v.size() * sizeof(float));
  } else if (dst.dtype() == DType::f16 && src == StDType::F16) {
    const StTensor s = reader.read(name);
    t.copy_from_host(s.bytes.data(), s.bytes.size());
  } else if (dst.dtype() == DType::f16 && floating) {
    const std::vector<float> v = reader.read_f32(name);
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
    t.copy_from_host(h.data(), h.size() * 2);
  } else if ((dst.dtype() == DType::u8 && src == StDType::U8) ||
             (dst.dtype() == DType::i32 && src == StDType::I32)) {
    const StTensor s = reader.read(name);
    t.copy_from_host(s.bytes.data(), s.bytes.size());
  } else {
    throw Error(where + "stored dtype " + st_dtype_name(src) + " cannot be loaded into a " +
                to_string(dst.dtype()) + " tensor.");
  }
}

}  // namespace magellano::io
