// Plain C++ references for blank infilling (data/blank_infilling.hpp): the layout of parts A and B
// built by concatenation from a plan, the plan's invariants, and the float64 law of span lengths.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "magellano/data/blank_infilling.hpp"

namespace mgtest {

struct InfillRow {
  std::vector<int32_t> x, y;  // (L) each
  int32_t prefix = 0;         // |A|
  bool operator==(const InfillRow&) const = default;
};

// A = the source with each span -> [MASK]; B = for each span in plan.order: [START] span tokens.
// y: -100 over A; over B the next token of the span, [END] after its last.
InfillRow reference_infill_row(const magellano::data::InfillPlan& plan, const std::vector<int32_t>& window,
                               magellano::data::InfillTokens tokens);

// "" if the plan is valid for L inputs under c (spans in the source, sorted, disjoint, not touching;
// source = L - 2·m; order a permutation; the masked total as the header's rule says), else what is wrong.
std::string infill_plan_problems(const magellano::data::InfillPlan& plan, const magellano::data::InfillConfig& c,
                                 int64_t len);

// P(max(1, Poisson(lambda)) = k), float64.
double span_length_probability(double lambda, int64_t k);

}  // namespace mgtest
