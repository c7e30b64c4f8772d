// Tensor: a contiguous row-major view (shape up to 4-D, dtype, element offset) into a shared
// device buffer, plus the autograd metadata (requires_grad, grad). Copies of a Tensor are
// handles to the same tensor; views share the buffer but are tensors of their own.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "magellano/runtime/context.hpp"

namespace magellano {

enum class DType { f32, f16, u8, i32 };
size_t dtype_size(DType t);
const char* to_string(DType t);

class Shape {
 public:
  static constexpr int kMaxDims = 4;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  int ndim() const { return ndim_; }
  int64_t operator[](int i) const;  // negative i counts from the back
  int64_t numel() const;
  int64_t last() const { return ndim_ ? dims_[ndim_ - 1] : 1; }
  int64_t rows() const { return numel() / (ndim_ ? last() : 1); }  // product of all but last
  std::vector<int64_t> dims() const { return {dims_.begin(), dims_.begin() + ndim_}; }
  Shape with_last(int64_t n) const;  // same leading dims, last replaced
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "(2, 3, 5)"

 private:
  std::array<int64_t, kMaxDims> dims_{};
  int ndim_ = 0;
};

struct AutogradMeta;

class Tensor {
 public:
  Tensor() = default;  // undefined
  // Uninitialized device tensor (contents are garbage, or NaN when poisoning is on).
  static Tensor empty(Context& ctx, const Shape& shape, DType dtype = DType::f32,
                      MemCategory category = MemCategory::activations);
  static Tensor zeros(Context& ctx, const Shape& shape, DType dtype = DType::f32,
                      MemCategory category = MemCategory::activations);
  static Tensor full(Context& ctx, const Shape& shape, float value,
                     MemCategory category = MemCategory::activations);
  // Host data in: f32 (converted to f16 when dtype is f16), or raw i32 / u8.
  static Tensor from_host(Context& ctx, const Shape& shape, const std::vector<float>& data,
                          DType dtype = DType::f32, MemCategory category = MemCategory::activations);
  static Tensor from_host_i32(Context& ctx, const Shape& shape, const std::vector<int32_t>& data,
                              MemCategory category = MemCategory::activations);
  static Tensor from_host_u8(Context& ctx, const Shape& shape, const std::vector<uint8_t>& data,
                             MemCategory category = MemCategory::activations);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  DType dtype() const;
  int64_t numel() const { return shape().numel(); }
  int64_t size(int i) const { return shape()[i]; }
  uint64_t offset() const;  // in elements, into buffer()
  uint64_t nbytes() const { return numel() * dtype_size(dtype()); }
  cl_mem buffer() const;
  Context& ctx() const;
  const std::shared_ptr<Storage>& storage() const;

  // Host transfers (blocking). to_host() returns f32 for f32/f16 tensors.
  std::vector<float> to_host() const;
  std::vector<int32_t> to_host_i32() const;
  std::vector<uint8_t> to_host_u8() const;
  void copy_from_host(const void* data, uint64_t bytes);  // raw bytes, whole tensor
  float item() const;  // the single value of a one-element f32 tensor

  // Views without a copy and without autograd (use ops::reshape for a differentiable one).
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) of the first dimension, as a view.
  Tensor narrow_rows(int64_t begin, int64_t end) const;

  // Moves this tensor into `storage` at element `offset`: enqueues a device copy of its values
  // there, then points this tensor (every copy of this handle, e.g. the ones modules hold) at
  // the new place. Dtype, shape, name and autograd state are kept; the old buffer is released
  // once nothing else uses it. Views taken earlier keep pointing at the old buffer. Needs the
  // same context and (offset + numel) * dtype size <= storage->bytes(). (The optimizer packs
  // parameters into flat chunks with this.)
  void rebind(std::shared_ptr<Storage> storage, uint64_t offset);

  // Autograd.
  bool requires_grad() const;
  // Makes this a leaf that collects .grad: f32, or f16 for an f16 tensor (fp16 parameter
  // storage: the gradient is stored like the parameter; see AutogradMeta::grad_dtype).
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const;                         // undefined until a backward reached it
  void zero_grad();                            // next backward overwrites instead of adding
  const std::shared_ptr<AutogradMeta>& meta() const;
  const std::string& name() const;
  Tensor& set_name(std::string n);

 private:
  struct Impl;
  explicit Tensor(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
  friend struct AutogradMeta;
};

// The autograd state of one tensor. Backward closures hold this (not the tensor's values), so
// an activation's buffer is freed as soon as nothing needs its values.
struct AutogradMeta {
  Shape shape;
  std::shared_ptr<Context> ctx;
  bool requires_grad = false;
  bool is_leaf = true;      // created by the user, not by an op: keeps its grad after backward
  bool grad_valid = false;  // false: grad's buffer (if any) holds nothing to add to
  // f32, or f16 for an f16 leaf (an fp16-stored parameter). Backward code computes every
  // gradient in fp32; an f16 gradient is written through ops::accumulate_grad, which adds in
  // fp32 and rounds the sum to fp16 (autograd::grad_target refuses it to other writers).
  DType grad_dtype = DType::f32;
  Tensor grad;              // grad_dtype, same shape
  std::string name;
};

}  // namespace magellano
