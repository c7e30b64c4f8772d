#include "magellano/autograd/tape.hpp"

#include <vector>

#include "magellano/runtime/error.hpp"

namespace magellano::autograd {
namespace {

struct Node {
  std::shared_ptr<AutogradMeta> output;
  std::function<void(const Tensor&)> backward;
};

thread_local bool g_grad_enabled = true;
thread_local std::vector<Node> g_tape;
thread_local int g_nested = 0;  // NestedTapes open: 0 = the outermost tape is g_tape
thread_local TapeObserver* g_observer = nullptr;

}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradScope::NoGradScope() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradScope::~NoGradScope() { g_grad_enabled = previous_; }

EnableGradScope::EnableGradScope() : previous_(g_grad_enabled) { g_grad_enabled = true; }
EnableGradScope::~EnableGradScope() { g_grad_enabled = previous_; }

struct NestedTape::Saved {
  std::vector<Node> tape;
};
NestedTape::NestedTape() : saved_(std::make_unique<Saved>()) {
  saved_->tape.swap(g_tape);
  ++g_nested;
}
NestedTape::~NestedTape() {
  g_tape.swap(saved_->tape);  // the nested nodes (if any) go with saved_
  --g_nested;
}

void set_tape_observer(TapeObserver* observer) { g_observer = observer; }

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<AutogradMeta> grad_meta(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  if (g_observer && g_nested == 0) g_observer->used(*t.meta(), g_tape.size());
  return t.meta();
}

void record(const Tensor& output, std::function<void(const Tensor&)> backward) {
  auto& m = output.meta();
  m->requires_grad = true;
  m->is_leaf = false;
  g_tape.push_back(Node{m, std::move(backward)});
}

GradTarget grad_target(const std::shared_ptr<AutogradMeta>& m, bool f16_ok) {
  if (m->grad_dtype == DType::f16 && !f16_ok)
    throw Error("backward: '" + (m->name.empty() ? std::string("a tensor") : m->name) +
                "' is an fp16 parameter, and this op writes f32 gradients only (fp16 weights "
                "are read by linear, embedding and expert_mlp).");
  if (g_observer && m->is_leaf) g_observer->leaf_written(*m);
  GradTarget t;
  if (!m->grad.defined() || m->grad.dtype() != m->grad_dtype) {
    m->grad = Tensor::empty(*m->ctx, m->shape, m->grad_dtype,
                            m->is_leaf ? MemCategory::gradients : MemCategory::activations);
    m->grad_valid = false;
  }
  t.tensor = m->grad;
  t.accumulate = m->grad_valid;
  m->grad_valid = true;
  return t;
}

namespace {
void run_tape() {
  while (!g_tape.empty()) {
    Node node = std::move(g_tape.back());
    g_tape.pop_back();
    if (node.output->grad_valid) node.backward(node.output->grad);
    if (!node.output->is_leaf) {
      node.output->grad = Tensor();
      node.output->grad_valid = false;
    }
    if (g_observer && g_nested == 0) g_observer->node_done(g_tape.size());
  }  // each node (and what its closure saved) is freed at the end of its iteration
}
}  // namespace

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds) {
  if (outputs.size() != seeds.size()) throw Error("backward: one seed per output is needed.");
  NoGradScope no_grad;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].defined() || !outputs[i].requires_grad() || !seeds[i].defined()) continue;
    if (seeds[i].shape() != outputs[i].shape())
      throw Error("backward: seed shape " + seeds[i].shape().str() + " differs from the output's " +
                  outputs[i].shape().str());
    auto& m = outputs[i].meta();
    m->grad = seeds[i];
    m->grad_valid = true;
  }
  run_tape();
}

void backward(const Tensor& loss, const Tensor& seed) {
  if (!loss.defined() || !loss.requires_grad())
    throw Error("backward: the loss does not depend on any tensor that requires a gradient "
                "(mark parameters with set_requires_grad()).");
  NoGradScope no_grad;
  auto& m = loss.meta();
  if (seed.defined()) {
    if (seed.shape() != loss.shape())
      throw Error("backward: seed shape " + seed.shape().str() + " differs from the loss's " +
                  loss.shape().str());
    m->grad = seed;
  } else {
    m->grad = Tensor::full(loss.ctx(), loss.shape(), 1.0f);
  }
  m->grad_valid = true;
  run_tape();
}

size_t tape_size() { return g_tape.size(); }
void clear_tape() { g_tape.clear(); }

}  // namespace magellano::autograd
