#include <cmath>

#include "reference.hpp"

namespace mgtest::ref {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double silu(double x) { return x * sigmoid(x); }
double silu_grad(double x) {
  const double s = sigmoid(x);
  return s * (1 + x * (1 - s));
}
double softplus(double x) { return std::log1p(std::exp(x)); }
double exponential(double x) { return std::exp(x); }
double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_grad(double x) {
  return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}

Vec pointwise(const Vec& x, double (*f)(double)) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

void pointwise_bwd(const Vec& x, double (*df)(double), const Vec& dy, Vec& dx) {
  for (size_t i = 0; i < x.size(); ++i) dx[i] += dy[i] * df(x[i]);
}

Vec silu(const Vec& x) { return pointwise(x, silu); }
void silu_bwd(const Vec& x, const Vec& dy, Vec& dx) { pointwise_bwd(x, silu_grad, dy, dx); }

}  // namespace mgtest::ref
