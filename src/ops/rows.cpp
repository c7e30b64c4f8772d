#include "magellano/ops/rows.hpp"

#include <memory>

#include "check.hpp"
#include "magellano/ops/elementwise.hpp"

namespace magellano::ops {

std::vector<Tensor> split_rows(const Tensor& x, const std::vector<int64_t>& offsets) {
  detail::require_f32(x, "split_rows", "x");
  if (x.shape().ndim() != 2) throw Error("split_rows: x must be (R, D), got " + x.shape().str());
  if (offsets.size() < 2 || offsets.front() != 0 || offsets.back() != x.size(0))
    throw Error("split_rows: offsets must run from 0 to R = " + std::to_string(x.size(0)) + ".");
  const size_t k = offsets.size() - 1;
  std::vector<Tensor> out(k);
  for (size_t i = 0; i < k; ++i) {
    if (offsets[i + 1] < offsets[i]) throw Error("split_rows: offsets must not decrease.");
    if (offsets[i + 1] == offsets[i]) continue;
    out[i] = Tensor::empty(x.ctx(), Shape{offsets[i + 1] - offsets[i], x.size(1)});
    copy_into(x.narrow_rows(offsets[i], offsets[i + 1]), out[i]);
  }
  if (!autograd::any_requires_grad({x})) return out;
  // One shared record per piece; the first piece's backward to run zero-fills dx's other rows.
  struct Shared {
    std::shared_ptr<AutogradMeta> mx;
    std::vector<int64_t> offsets;
  };
  auto shared = std::make_shared<Shared>(Shared{autograd::grad_meta(x), offsets});
  for (size_t i = 0; i < k; ++i) {
    if (!out[i].defined()) continue;
    autograd::record(out[i], [shared, i](const Tensor& dy) {
      auto& m = shared->mx;
      const auto& o = shared->offsets;
      auto g = autograd::grad_target(m);
      if (!g.accumulate) fill(g.tensor, 0.0f);
      scale_into(dy, 1.0f, g.tensor.narrow_rows(o[i], o[i + 1]), true);
    });
  }
  return out;
}

Tensor concat_rows(const std::vector<Tensor>& xs, int64_t rows_total) {
  int64_t d = -1, rows = 0;
  Context* ctx = nullptr;
  for (const auto& t : xs) {
    if (!t.defined()) continue;
    detail::require_f32(t, "concat_rows", "xs");
    if (t.shape().ndim() != 2 || (d >= 0 && t.size(1) != d))
      throw Error("concat_rows: pieces must be (c_i, D) with one D, got " + t.shape().str());
    d = t.size(1);
    rows += t.size(0);
    ctx = &t.ctx();
  }
  if (!ctx || rows != rows_total)
    throw Error("concat_rows: the pieces hold " + std::to_string(rows) + " rows, expected " +
                std::to_string(rows_total) + ".");
  Tensor out = Tensor::empty(*ctx, Shape{rows_total, d});
  std::vector<std::shared_ptr<AutogradMeta>> metas;
  std::vector<int64_t> starts;
  int64_t r = 0;
  bool any = false;
  for (const auto& t : xs) {
    if (!t.defined()) continue;
    copy_into(t, out.narrow_rows(r, r + t.size(0)));
    metas.push_back(autograd::grad_meta(t));
    starts.push_back(r);
    any |= autograd::any_requires_grad({t});
    r += t.size(0);
  }
  starts.push_back(r);
  if (any)
    autograd::record(out, [metas, starts](const Tensor& dy) {
      for (size_t i = 0; i < metas.size(); ++i)
        accumulate_grad(metas[i], dy.narrow_rows(starts[i], starts[i + 1]));
    });
  return out;
}

}  // namespace magellano::ops
