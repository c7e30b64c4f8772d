// Test support: the shared test device, random data, float64 references and their checks.
//
// Every op test follows one recipe (check_op): random inputs at odd sizes, the device op run
// with poisoned (NaN-filled) fresh buffers, the output and every input's gradient compared
// with a plain float64 reference, and that reference's gradient itself checked by central
// finite differences.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "magellano/autograd/tape.hpp"
#include "magellano/ops/mapping.hpp"
#include "magellano/runtime/context.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/tensor/tensor.hpp"

namespace mgtest {

using magellano::Context;
using magellano::DType;
using magellano::Shape;
using magellano::Tensor;
using Vec = std::vector<double>;

// The device under test: $MAGELLANO_TEST_DEVICE (same syntax as --device), else PoCL's CPU
// device when present, else the default. Poisoning is on, and so is the check of every kernel
// argument's type (Context::set_check_kernel_args).
Context& test_ctx();

Vec randn(size_t n, uint64_t seed, double scale = 1.0);
Vec uniform(size_t n, uint64_t seed, double lo, double hi);
std::vector<float> to_f32(const Vec& v);
Vec to_f64(const std::vector<float>& v);
Tensor upload(const Shape& s, const Vec& v, bool requires_grad = false);
Tensor upload_i32(const Shape& s, const std::vector<int32_t>& v);

// Every element must satisfy |got - want| <= atol + rtol * |want| (NaN fails). Reports the
// worst element and its index.
void expect_close(const std::vector<float>& got, const Vec& want, double rtol, double atol,
                  const std::string& what);
void expect_close(const Vec& got, const Vec& want, double rtol, double atol,
                  const std::string& what);

// Central differences of a scalar function of x at the coordinates `at` (step h relative to
// max(1, |x_i|)); returns one derivative per coordinate.
Vec finite_diff(const std::function<double(const Vec&)>& f, Vec x, const std::vector<size_t>& at,
                double h = 1e-6);

struct Input {
  Shape shape;
  Vec values;                // f32 inputs (or i32 values stored as doubles)
  bool differentiable = true;
  // f32, i32, or f16 (a weight stored in half precision: the values should be fp16-exact;
  // check_op compares gradients of f32 inputs only)
  DType dtype = DType::f32;
};
// The input on the test device (requiring a gradient when differentiable and not i32).
Tensor upload_input(const Input& in);

using RefForward = std::function<Vec(const std::vector<Vec>& inputs)>;
// Gradients of sum(out * dout) with respect to each input (empty for non-differentiable ones).
using RefBackward = std::function<std::vector<Vec>(const std::vector<Vec>& inputs, const Vec& dout)>;
using DeviceOp = std::function<Tensor(const std::vector<Tensor>& inputs)>;

struct Tolerance {
  double fwd_rtol = 1e-5, fwd_atol = 1e-6;    // fp32 vs float64
  double grad_rtol = 1e-4, grad_atol = 1e-5;  // backward chains a few more roundings
  double fd_rtol = 1e-5, fd_atol = 1e-7;      // float64 reference vs finite differences
};

// Forces a kernel mapping (ops/mapping.hpp) for a scope; automatic (by device) afterwards.
struct ForcedMapping {
  explicit ForcedMapping(magellano::ops::KernelMapping m) { magellano::ops::force_kernel_mapping(m); }
  ~ForcedMapping() { magellano::ops::force_kernel_mapping(magellano::ops::KernelMapping::automatic); }
  ForcedMapping(const ForcedMapping&) = delete;
  ForcedMapping& operator=(const ForcedMapping&) = delete;
};
// The mapping the test device does not pick by itself (gpu on PoCL, cpu on a GPU).
magellano::ops::KernelMapping other_mapping();

// Runs the whole recipe. Also runs backward a second time (without zero_grad) and checks that
// the gradients doubled: accumulation works and backward never trusts stale output buffers.
void check_op(const std::string& name, const std::vector<Input>& inputs, const DeviceOp& op,
              const RefForward& ref, const RefBackward& ref_grad, const Tolerance& tol = {});

}  // namespace mgtest
