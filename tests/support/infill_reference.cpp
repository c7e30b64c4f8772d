#include "infill_reference.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mgtest {

using magellano::data::InfillConfig;
using magellano::data::InfillMode;
using magellano::data::InfillPlan;
using magellano::data::InfillTokens;

InfillRow reference_infill_row(const InfillPlan& plan, const std::vector<int32_t>& window, InfillTokens tokens) {
  std::vector<int32_t> a;
  for (int32_t s = 0; s < plan.source; ++s) {
    const auto span = std::find_if(plan.spans.begin(), plan.spans.end(), [&](const auto& sp) {
      return s >= sp.start && s < sp.start + sp.length;
    });
    if (span == plan.spans.end()) a.push_back(window[s]);
    else if (span->start == s) a.push_back(tokens.mask);
  }
  InfillRow r;
  r.prefix = static_cast<int32_t>(a.size());
  r.x = a;
  r.y.assign(a.size(), -100);
  for (const int32_t i : plan.order) {
    const auto& sp = plan.spans[i];
    std::vector<int32_t> part{tokens.start}, next;
    for (int32_t j = 0; j < sp.length; ++j) part.push_back(window[sp.start + j]);
    next.assign(part.begin() + 1, part.end());
    next.push_back(tokens.end);
    r.x.insert(r.x.end(), part.begin(), part.end());
    r.y.insert(r.y.end(), next.begin(), next.end());
  }
  return r;
}

std::string infill_plan_problems(const InfillPlan& plan, const InfillConfig& c, int64_t len) {
  const auto m = static_cast<int64_t>(plan.spans.size());
  if (m < 1) return "no span";
  if (plan.source != len - 2 * m) return "source " + std::to_string(plan.source) + " != L - 2m";
  int64_t masked = 0, end = -1;
  for (const auto& sp : plan.spans) {
    if (sp.length < 1) return "empty span";
    if (sp.start <= end) return "spans out of order, overlapping or touching at " + std::to_string(sp.start);
    end = sp.start + sp.length;
    if (end > plan.source) return "span past the source";
    masked += sp.length;
  }
  std::vector<int32_t> order = plan.order;
  std::sort(order.begin(), order.end());
  std::vector<int32_t> ids(m);
  std::iota(ids.begin(), ids.end(), 0);
  if (order != ids) return "order is not a permutation of the spans";
  const double s = static_cast<double>(plan.source);
  if (c.mode == InfillMode::document) {
    if (m != 1) return "document mode with " + std::to_string(m) + " spans";
    if (masked < std::max(1.0, std::floor(0.5 * s)) || masked > s) return "document span of " + std::to_string(masked);
    return "";
  }
  if (c.mode == InfillMode::single) {
    if (m != 1) return "single mode with " + std::to_string(m) + " spans";
    if (masked > std::max<int64_t>(1, plan.source / 2)) return "single span of " + std::to_string(masked);
    return "";
  }
  // The masked total lies between the target with one more span and the target with these m.
  auto target = [&](int64_t spans) {
    return std::max<int64_t>(1, std::llround(c.ratio * static_cast<double>(len - 2 * spans)));
  };
  const bool room = len - 2 * (m + 1) >= 1;
  if (masked > target(m) || (room && masked < target(m + 1)))
    return "masked " + std::to_string(masked) + " outside [" + std::to_string(target(m + 1)) + ", " +
           std::to_string(target(m)) + "]";
  return "";
}

double span_length_probability(double lambda, int64_t k) {
  if (k < 1) return 0.0;
  const double poisson = std::exp(-lambda + static_cast<double>(k) * std::log(lambda) - std::lgamma(k + 1.0));
  return k == 1 ? poisson + std::exp(-lambda) : poisson;
}

}  // namespace mgtest
