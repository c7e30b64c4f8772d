// Argument checks shared by the op launchers (private to src/ops).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "magellano/runtime/error.hpp"
#include "magellano/tensor/tensor.hpp"

namespace magellano::ops::detail {

inline void require_f32(const Tensor& t, const char* op, const char* arg) {
  if (!t.defined()) throw Error(std::string(op) + ": argument '" + arg + "' is undefined.");
  if (t.dtype() != DType::f32)
    throw Error(std::string(op) + ": '" + arg + "' must be f32, got " + to_string(t.dtype()) + ".");
}

inline void require_dtype(const Tensor& t, DType d, const char* op, const char* arg) {
  if (!t.defined()) throw Error(std::string(op) + ": argument '" + arg + "' is undefined.");
  if (t.dtype() != d)
    throw Error(std::string(op) + ": '" + arg + "' must be " + to_string(d) + ", got " +
                to_string(t.dtype()) + ".");
}

inline void require_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  if (a.shape() != b.shape())
    throw Error(std::string(op) + ": shapes " + a.shape().str() + " and " + b.shape().str() +
                " differ.");
}

// Kernels that keep their sizes in int registers (the GEMMs and the scans: their inner loops
// compile better so) receive them as long and narrow them; their launchers check here first.
inline void require_int_sizes(std::initializer_list<int64_t> sizes, const char* op, const char* kernel) {
  for (int64_t v : sizes)
    if (v > std::numeric_limits<int32_t>::max())
      throw Error(std::string(op) + ": a dimension above 2^31 - 1 is not supported by " + kernel + ".");
}

// A size for a kernel that takes int sizes (the GPU GEMMs, see cl/gemm_gpu.cl), after
// require_int_sizes checked it fits.
inline int32_t int_size(int64_t v) { return static_cast<int32_t>(v); }

}  // namespace magellano::ops::detail
