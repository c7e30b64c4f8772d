// The registered op cases (tests/support/op_case.hpp) as gtests: one per test case, running
// check_op's recipe against the op's float64 reference, named
// Ops/OpCase.MatchesFloat64Reference/<case name> (e.g. --gtest_filter='*rms_norm*'); each once
// more with the other kernel mapping forced (ops/mapping.hpp: the GPUs' kernels on PoCL, the
// CPU ones on a GPU), named OtherMapping/OpCase.MatchesFloat64Reference/<case name>; and the
// perf mode, OpPerf.All, which times every op's perf case when MAGELLANO_TEST_PERF=1 (skipped
// otherwise, so CI times nothing), printing a table and, when MAGELLANO_TEST_PERF_JSON names a
// file, one JSON line per result into it (see op_perf.hpp); MAGELLANO_TEST_PERF_OPS=a,b times
// only the ops named (e.g. softmax,cross_entropy), MAGELLANO_TEST_PERF_MAPPING=gpu|cpu times
// that kernel mapping instead of the device's.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "op_case.hpp"
#include "op_perf.hpp"

using namespace mgtest;

namespace {

class OpCase : public testing::TestWithParam<size_t> {};

TEST_P(OpCase, MatchesFloat64Reference) { check_case(*registered_test_cases()[GetParam()].spec); }

std::vector<size_t> all_cases() {
  std::vector<size_t> v(registered_test_cases().size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

std::string case_name(const testing::TestParamInfo<size_t>& info) {
  return registered_test_cases()[info.param].test_name;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpCase, testing::ValuesIn(all_cases()), case_name);

class OpCaseOtherMapping : public testing::TestWithParam<size_t> {};

TEST_P(OpCaseOtherMapping, MatchesFloat64Reference) {
  ForcedMapping forced(other_mapping());
  check_case(*registered_test_cases()[GetParam()].spec);
}

INSTANTIATE_TEST_SUITE_P(OtherMapping, OpCaseOtherMapping, testing::ValuesIn(all_cases()), case_name);

TEST(OpPerf, All) {
  const char* on = std::getenv("MAGELLANO_TEST_PERF");
  if (!on || std::string(on) != "1") GTEST_SKIP() << "set MAGELLANO_TEST_PERF=1 to time every registered op";
  std::ofstream json;
  if (const char* path = std::getenv("MAGELLANO_TEST_PERF_JSON"); path && *path) {
    json.open(path);
    ASSERT_TRUE(json) << "cannot write MAGELLANO_TEST_PERF_JSON=" << path;
  }
  std::set<std::string> only;
  if (const char* list = std::getenv("MAGELLANO_TEST_PERF_OPS"); list && *list) {
    std::istringstream names(list);
    for (std::string name; std::getline(names, name, ',');) {
      bool known = false;
      for (const auto& op : op_registry()) known |= op.name == name;
      ASSERT_TRUE(known) << "MAGELLANO_TEST_PERF_OPS: no registered op is called '" << name << "'";
      only.insert(name);
    }
  }
  // MAGELLANO_TEST_PERF_MAPPING=gpu|cpu: time that kernel mapping (ops/mapping.hpp) instead of
  // the device's, e.g. the portable kernels on PoCL for a before/after in one binary.
  std::optional<ForcedMapping> forced;
  if (const char* m = std::getenv("MAGELLANO_TEST_PERF_MAPPING"); m && *m) {
    const std::string name = m;
    using magellano::ops::KernelMapping;
    ASSERT_TRUE(name == "gpu" || name == "cpu")
        << "MAGELLANO_TEST_PERF_MAPPING must be gpu or cpu, got '" << name << "'";
    forced.emplace(name == "gpu" ? KernelMapping::gpu : KernelMapping::cpu);
  }
  run_op_perf(test_ctx(), std::cout, json.is_open() ? &json : nullptr, only);
}

}  // namespace
