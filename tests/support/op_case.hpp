// The op registry: every op registers its cases once, from its test file in tests/ops/, and
// both the correctness tests and the op benchmark run them.
//
//   const RegisterOp reg{{"rms_norm",
//       {rms_norm_case(Shape{7, 1}, 1), rms_norm_case(Shape{33, 257}, 3), ...},  // odd test sizes
//       rms_norm_case(Shape{8 * 512, 768}, 9)}};                                // one perf size
//
// where rms_norm_case(sizes) returns a CaseSpec: the case's name and a function building it.
// A case is built only when it runs (its inputs can be large, and a device op may hold device
// state such as a quantized weight). It holds the inputs, the device op, its float64 reference
// forward and backward (tests/support/reference.hpp), the tolerance (with the reasons in the
// op's test file), and the op's cost model evaluated at the case's sizes: bytes moved and
// FLOPs, forward and backward. An op family is then five files found from its name (rmsnorm,
// softmax, index, ...): include/magellano/ops/NAME.hpp, src/ops/NAME.cpp, cl/NAME.cl (GEMMs:
// gemm_*.cl; MoE ops: moe.cl), tests/support/reference/NAME.cpp, tests/ops/test_NAME.cpp.
//
// tests/ops/op_cases.cpp turns every test case into one gtest
// (Ops/OpCase.MatchesFloat64Reference/<case name>) that runs check_op's recipe, and times every
// op's perf case when MAGELLANO_TEST_PERF=1 (see op_perf.hpp).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness.hpp"

namespace mgtest {

// Device memory traffic (bytes read + written) and floating-point operations of one run: the
// forward, and the backward that computes every differentiable input's gradient.
struct Cost {
  double fwd_bytes = 0, fwd_flops = 0;
  double bwd_bytes = 0, bwd_flops = 0;
};

struct OpCase {
  std::vector<Input> inputs;
  DeviceOp device;
  // The float64 reference. Empty for ops whose outputs are not a plain function check_op can
  // compare (sort: i32 permutations; sampling: random draws): their own TESTs check them, and
  // the registry holds only their perf case.
  RefForward ref;
  RefBackward ref_grad;
  Tolerance tol;
  nlohmann::json sizes = nlohmann::json::object();  // named sizes, for the perf table and JSON
  Cost cost;
};

// A case as registered: a readable, unique name (e.g. "rms_norm 33x257") and how to build it.
struct CaseSpec {
  std::string name;
  std::function<OpCase()> build;
};

struct RegisteredOp {
  std::string name;             // the op, e.g. "rms_norm"
  std::vector<CaseSpec> tests;  // each checked against the reference by one gtest
  CaseSpec perf;                // one representative size, timed in perf mode
};

std::vector<RegisteredOp>& op_registry();
struct RegisterOp {
  explicit RegisterOp(RegisteredOp op) { op_registry().push_back(std::move(op)); }
};

// Every registered test case, in registration order, with its gtest-safe name
// ([A-Za-z0-9_], unique).
struct NamedCase {
  const CaseSpec* spec;
  std::string test_name;
};
const std::vector<NamedCase>& registered_test_cases();

// Builds the case and runs check_op on it.
void check_case(const CaseSpec& spec);
// The failure messages check_op reports for the case with its device op replaced by `op` (a
// deliberately broken variant: a test expects some), intercepted so they fail nothing.
std::vector<std::string> failures_with(const CaseSpec& spec, const DeviceOp& op);

// For case names: "33x257".
std::string dims(const Shape& s);

// Zero gradients shaped like the inputs, for references that add into them.
std::vector<Vec> zeros_like(const std::vector<Vec>& inputs);

// a's values followed by b's (a case's several outputs, e.g. a step's result and the state it
// leaves, as one flat output): host vectors, or device tensors into a 1-D tensor.
Vec joined(Vec a, const Vec& b);
Tensor joined(const Tensor& a, const Tensor& b);

}  // namespace mgtest
