#include "op_case.hpp"

#include <gtest/gtest-spi.h>

#include <cctype>
#include <set>

namespace mgtest {

std::vector<RegisteredOp>& op_registry() {
  static std::vector<RegisteredOp> all;
  return all;
}

namespace {
// "rms_norm 33x257 x40" -> "rms_norm_33x257_x40": runs of other characters become one '_'.
std::string gtest_safe(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}
}  // namespace

const std::vector<NamedCase>& registered_test_cases() {
  static const std::vector<NamedCase> all = [] {
    std::vector<NamedCase> v;
    std::set<std::string> used;
    for (const auto& op : op_registry())
      for (const auto& c : op.tests) {
        std::string name = gtest_safe(c.name);
        for (int k = 2; !used.insert(name).second; ++k) name = gtest_safe(c.name) + "_" + std::to_string(k);
        v.push_back({&c, name});
      }
    return v;
  }();
  return all;
}

void check_case(const CaseSpec& spec) {
  const OpCase c = spec.build();
  ASSERT_TRUE(c.ref && c.ref_grad) << spec.name << ": a test case needs a float64 reference";
  check_op(spec.name, c.inputs, c.device, c.ref, c.ref_grad, c.tol);
}

std::vector<std::string> failures_with(const CaseSpec& spec, const DeviceOp& op) {
  const OpCase c = spec.build();
  testing::TestPartResultArray results;
  {
    testing::ScopedFakeTestPartResultReporter reporter(
        testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    check_op(spec.name, c.inputs, op, c.ref, c.ref_grad, c.tol);
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i) out.push_back(results.GetTestPartResult(i).message());
  magellano::autograd::clear_tape();
  return out;
}

std::string dims(const Shape& s) {
  std::string out;
  for (int i = 0; i < s.ndim(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

std::vector<Vec> zeros_like(const std::vector<Vec>& inputs) {
  std::vector<Vec> g;
  for (const auto& x : inputs) g.emplace_back(x.size(), 0.0);
  return g;
}

Vec joined(Vec a, const Vec& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Tensor joined(const Tensor& a, const Tensor& b) {
  auto v = a.to_host();
  const auto w = b.to_host();
  v.insert(v.end(), w.begin(), w.end());
  return Tensor::from_host(test_ctx(), Shape{int64_t(v.size())}, v);
}

}  // namespace mgtest
