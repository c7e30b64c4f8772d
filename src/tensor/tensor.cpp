#include "magellano/tensor/tensor.hpp"

#include <CL/cl_half.h>

#include <cstring>

#include "magellano/runtime/error.hpp"

namespace magellano {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::u8: return 1;
    case DType::i32: return 4;
  }
  return 0;
}

const char* to_string(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
  }
  return "?";
}

// ---- Shape --------------------------------------------------------------------------------------
Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  if (dims.size() > kMaxDims)
    throw Error("Tensors have at most 4 dimensions; got " + std::to_string(dims.size()) + ".");
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) throw Error("Negative dimension in shape.");
    dims_[i] = dims[i];
  }
  ndim_ = static_cast<int>(dims.size());
}

int64_t Shape::operator[](int i) const {
  if (i < 0) i += ndim_;
  if (i < 0 || i >= ndim_) throw Error("Dimension index out of range for shape " + str() + ".");
  return dims_[i];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= dims_[i];
  return n;
}

Shape Shape::with_last(int64_t n) const {
  Shape s = *this;
  if (s.ndim_ == 0) s.ndim_ = 1;
  s.dims_[s.ndim_ - 1] = n;
  return s;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim_ != o.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < ndim_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
  return s + ")";
}

// ---- Tensor -------------------------------------------------------------------------------------
struct Tensor::Impl {
  std::shared_ptr<Storage> storage;
  uint64_t offset = 0;
  Shape shape;
  DType dtype = DType::f32;
  std::shared_ptr<AutogradMeta> meta;
};

namespace {
std::shared_ptr<AutogradMeta> new_meta(const Shape& s, const std::shared_ptr<Context>& ctx) {
  auto m = std::make_shared<AutogradMeta>();
  m->shape = s;
  m->ctx = ctx;
  return m;
}
}  // namespace

Tensor Tensor::empty(Context& ctx, const Shape& shape, DType dtype, MemCategory category) {
  auto impl = std::make_shared<Impl>();
  impl->storage = ctx.allocate(shape.numel() * dtype_size(dtype), category);
  impl->shape = shape;
  impl->dtype = dtype;
  impl->meta = new_meta(shape, impl->storage->ctx_ptr());
  return Tensor(impl);
}

Tensor Tensor::zeros(Context& ctx, const Shape& shape, DType dtype, MemCategory category) {
  Tensor t = empty(ctx, shape, dtype, category);
  const unsigned char zero = 0;
  check_cl(clEnqueueFillBuffer(ctx.queue(), t.buffer(), &zero, 1, 0, t.storage()->bytes(), 0,
                               nullptr, nullptr),
           "clEnqueueFillBuffer");
  return t;
}

Tensor Tensor::full(Context& ctx, const Shape& shape, float value, MemCategory category) {
  Tensor t = empty(ctx, shape, DType::f32, category);
  check_cl(clEnqueueFillBuffer(ctx.queue(), t.buffer(), &value, sizeof value, 0,
                               t.numel() * sizeof(float), 0, nullptr, nullptr),
           "clEnqueueFillBuffer");
  return t;
}

Tensor Tensor::from_host(Context& ctx, const Shape& shape, const std::vector<float>& data,
                         DType dtype, MemCategory category) {
  if (static_cast<int64_t>(data.size()) != shape.numel())
    throw Error("from_host: " + std::to_string(data.size()) + " values for shape " + shape.str());
  Tensor t = empty(ctx, shape, dtype, category);
  if (dtype == DType::f32) {
    t.copy_from_host(data.data(), data.size() * 4);
  } else if (dtype == DType::f16) {
    std::vector<cl_half> h(data.size());
    for (size_t i = 0; i < data.size(); ++i) h[i] = cl_half_from_float(data[i], CL_HALF_RTE);
    t.copy_from_host(h.data(), h.size() * 2);
  } else {
    throw Error("from_host: use from_host_i32 / from_host_u8 for integer tensors.");
  }
  return t;
}

Tensor Tensor::from_host_i32(Context& ctx, const Shape& shape, const std::vector<int32_t>& data,
                             MemCategory category) {
  if (static_cast<int64_t>(data.size()) != shape.numel())
    throw Error("from_host_i32: " + std::to_string(data.size()) + " values for shape " + shape.str());
  Tensor t = empty(ctx, shape, DType::i32, category);
  t.copy_from_host(data.data(), data.size() * 4);
  return t;
}

Tensor Tensor::from_host_u8(Context& ctx, const Shape& shape, const std::vector<uint8_t>& data,
                            MemCategory category) {
  if (static_cast<int64_t>(data.size()) != shape.numel())
    throw Error("from_host_u8: " + std::to_string(data.size()) + " values for shape " + shape.str());
  Tensor t = empty(ctx, shape, DType::u8, category);
  t.copy_from_host(data.data(), data.size());
  return t;
}

namespace {

// A tensor's impl_, checked: an undefined Tensor (default-constructed: a gradient never computed,
// a result not assigned) is one clear error where it is used, not a null dereference.
template <class ImplPtr>
const ImplPtr& checked_impl(const ImplPtr& impl) {
  if (!impl)
    throw Error("tensor: an undefined (empty) Tensor was used, e.g. the gradient of a parameter the loss "
                "does not reach; check defined() first.");
  return impl;
}

}  // namespace

const Shape& Tensor::shape() const { return checked_impl(impl_)->shape; }
DType Tensor::dtype() const { return checked_impl(impl_)->dtype; }
uint64_t Tensor::offset() const { return checked_impl(impl_)->offset; }
cl_mem Tensor::buffer() const { return checked_impl(impl_)->storage->mem(); }
Context& Tensor::ctx() const { return checked_impl(impl_)->storage->ctx(); }
const std::shared_ptr<Storage>& Tensor::storage() const { return checked_impl(impl_)->storage; }

void Tensor::copy_from_host(const void* data, uint64_t bytes) {
  if (bytes != nbytes())
    throw Error("copy_from_host: " + std::to_string(bytes) + " bytes for a tensor of " +
                std::to_string(nbytes()));
  if (bytes == 0) return;
  check_cl(clEnqueueWriteBuffer(ctx().queue(), buffer(), CL_TRUE, offset() * dtype_size(dtype()),
                                bytes, data, 0, nullptr, nullptr),
           "clEnqueueWriteBuffer");
}

namespace {
void read_bytes(const Tensor& t, void* dst) {
  if (t.nbytes() == 0) return;
  check_cl(clEnqueueReadBuffer(t.ctx().queue(), t.buffer(), CL_TRUE,
                               t.offset() * dtype_size(t.dtype()), t.nbytes(), dst, 0, nullptr,
                               nullptr),
           "clEnqueueReadBuffer");
}
}  // namespace

std::vector<float> Tensor::to_host() const {
  std::vector<float> out(numel());
  if (dtype() == DType::f32) {
    read_bytes(*this, out.data());
  } else if (dtype() == DType::f16) {
    std::vector<cl_half> h(numel());
    read_bytes(*this, h.data());
    for (size_t i = 0; i < h.size(); ++i) out[i] = cl_half_to_float(h[i]);
  } else {
    throw Error("to_host: tensor is " + std::string(to_string(dtype())) + ", not f32/f16.");
  }
  return out;
}

std::vector<int32_t> Tensor::to_host_i32() const {
  if (dtype() != DType::i32) throw Error("to_host_i32 on a non-i32 tensor.");
  std::vector<int32_t> out(numel());
  read_bytes(*this, out.data());
  return out;
}

std::vector<uint8_t> Tensor::to_host_u8() const {
  if (dtype() != DType::u8) throw Error("to_host_u8 on a non-u8 tensor.");
  std::vector<uint8_t> out(numel());
  read_bytes(*this, out.data());
  return out;
}

float Tensor::item() const {
  if (numel() != 1) throw Error("item() needs a one-element tensor, got shape " + shape().str());
  return to_host()[0];
}

Tensor Tensor::view(const Shape& shape) const {
  if (shape.numel() != numel())
    throw Error("Cannot view shape " + this->shape().str() + " as " + shape.str() +
                ": element counts differ.");
  auto impl = std::make_shared<Impl>(*impl_);
  impl->shape = shape;
  impl->meta = new_meta(shape, impl_->storage->ctx_ptr());
  return Tensor(impl);
}

Tensor Tensor::narrow_rows(int64_t begin, int64_t end) const {
  const Shape& s = shape();
  if (s.ndim() == 0 || begin < 0 || end < begin || end > s[0])
    throw Error("narrow_rows(" + std::to_string(begin) + ", " + std::to_string(end) +
                ") out of range for shape " + s.str());
  std::vector<int64_t> d = s.dims();
  const int64_t row = s.numel() / (s[0] ? s[0] : 1);
  d[0] = end - begin;
  auto impl = std::make_shared<Impl>(*impl_);
  impl->shape = Shape(d);
  impl->offset += begin * row;
  impl->meta = new_meta(impl->shape, impl_->storage->ctx_ptr());
  return Tensor(impl);
}

void Tensor::rebind(std::shared_ptr<Storage> storage, uint64_t offset) {
  if (!defined()) throw Error("rebind: the tensor is undefined.");
  if (!storage) throw Error("rebind: no storage given.");
  if (&storage->ctx() != &ctx())
    throw Error("rebind: the new storage belongs to another context.");
  const uint64_t es = dtype_size(dtype());
  if ((offset + numel()) * es > storage->bytes())
    throw Error("rebind: " + std::to_string(nbytes()) + " bytes at element offset " +
                std::to_string(offset) + " do not fit a buffer of " +
                std::to_string(storage->bytes()) + " bytes.");
  if (storage == impl_->storage && offset == impl_->offset) return;
  if (numel() > 0)
    check_cl(clEnqueueCopyBuffer(ctx().queue(), buffer(), storage->mem(), impl_->offset * es,
                                 offset * es, nbytes(), 0, nullptr, nullptr),
             "clEnqueueCopyBuffer", "moving a tensor into another buffer");
  // The in-order queue runs the copy before anything enqueued later; OpenCL keeps the old
  // buffer alive until the copy has finished even when it is released now.
  impl_->storage = std::move(storage);
  impl_->offset = offset;
}

bool Tensor::requires_grad() const { return impl_ && impl_->meta->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  checked_impl(impl_)->meta->requires_grad = on;
  impl_->meta->is_leaf = true;
  impl_->meta->grad_dtype = dtype() == DType::f16 ? DType::f16 : DType::f32;
  return *this;
}

Tensor Tensor::grad() const { return checked_impl(impl_)->meta->grad_valid ? impl_->meta->grad : Tensor(); }
void Tensor::zero_grad() { checked_impl(impl_)->meta->grad_valid = false; }
const std::shared_ptr<AutogradMeta>& Tensor::meta() const { return checked_impl(impl_)->meta; }
const std::string& Tensor::name() const { return checked_impl(impl_)->meta->name; }
Tensor& Tensor::set_name(std::string n) {
  checked_impl(impl_)->meta->name = std::move(n);
  return *this;
}

}  // namespace magellano
