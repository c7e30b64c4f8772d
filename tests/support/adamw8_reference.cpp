#include "adamw8_reference.hpp"

#include <algorithm>
#include <cmath>

#include "magellano/io/st_dtype.hpp"

namespace mgtest {
namespace optim = magellano::optim;
namespace {

float r(double x) { return static_cast<float>(x); }  // one fp32 rounding

}  // namespace

Adamw8Scalars Adamw8Scalars::make(float lr, float wd, float beta1, float beta2, float eps, int64_t t,
                                  float coef) {
  const double b1 = beta1, b2 = beta2, td = double(t);
  return {r(1.0 - double(lr) * double(wd)), beta1, r(1.0 - b1), beta2, r(1.0 - b2),
          r(double(lr) / (1.0 - std::pow(b1, td))), r(std::sqrt(1.0 - std::pow(b2, td))), eps, coef};
}

Adamw8State::Adamw8State(int64_t n)
    : mc(size_t(n), 0), vc(size_t(n), 0), ma(size_t(optim::quant_blocks(n)), 0.0f),
      va(size_t(optim::quant_blocks(n)), 0.0f) {}

int nearest_code_reference(const optim::DynamicMap& map, float x) {
  int c = 0;
  for (int k = 0; k < 255; ++k) c += x > r(double(map.code[k]) + double(map.code[k + 1])) * 0.5f;
  return c;
}

int nearest_code_exact(const optim::DynamicMap& map, double x) {
  int best = 0;
  for (int k = 1; k < 256; ++k)
    if (std::fabs(x - map.code[k]) < std::fabs(x - map.code[best])) best = k;
  return best;
}

float dequantize_reference(const optim::DynamicMap& map, uint8_t c, float absmax) {
  return r(double(map.code[c]) * double(absmax));
}

void adamw8_step_reference(std::vector<float>& p, const std::vector<float>& g, Adamw8State& st,
                           int64_t decay_end, const Adamw8Scalars& s, bool half_params, Adamw8Break broken) {
  const optim::DynamicMap &sm = optim::dynamic_map(true), &um = optim::dynamic_map(false);
  const int64_t n = int64_t(p.size());
  const int64_t block = optim::kQuantBlock;
  const int64_t qblock = broken == Adamw8Break::block_128 ? 128 : block;  // the re-quantization's
  std::vector<float> m(p.size()), v(p.size());
  for (int64_t i = 0; i < n; ++i) {
    const size_t b = size_t(i / block);
    const float gi = r(double(g[i]) * s.coef);
    const float pi = i < decay_end ? r(double(p[i]) * s.decay) : p[i];
    const float m0 = dequantize_reference(sm, st.mc[i], st.ma[b]);
    const float v0 = dequantize_reference(um, st.vc[i], st.va[b]);
    m[i] = r(double(r(double(s.b1) * m0)) + double(r(double(s.omb1) * gi)));
    v[i] = r(double(r(double(s.b2) * v0)) + double(r(double(s.omb2) * double(r(double(gi) * gi)))));
    const float denom = r(double(r(double(r(std::sqrt(double(v[i])))) / s.bc2_sqrt)) + double(s.eps));
    float pn = r(double(pi) - double(r(double(s.step_size) * double(r(double(m[i]) / denom)))));
    if (half_params) pn = magellano::io::f16_to_f32(magellano::io::f32_to_f16(pn));
    p[i] = pn;
  }
  for (int64_t begin = 0; begin < n; begin += qblock) {
    const int64_t end = std::min(n, begin + qblock);
    float am = 0.0f, av = 0.0f;
    for (int64_t i = begin; i < end; ++i) am = std::max(am, std::fabs(m[i])), av = std::max(av, std::fabs(v[i]));
    st.ma[size_t(begin / block)] = am;
    st.va[size_t(begin / block)] = av;
    for (int64_t i = begin; i < end; ++i) {
      int cm = nearest_code_reference(sm, am > 0.0f ? r(double(m[i]) / am) : 0.0f);
      int cv = nearest_code_reference(um, av > 0.0f ? r(double(v[i]) / av) : 0.0f);
      if (broken == Adamw8Break::round_down) {  // the code below instead of the nearest
        cm = std::max(0, cm - (sm.code[cm] > r(double(m[i]) / am)));
        cv = std::max(0, cv - (um.code[cv] > r(double(v[i]) / av)));
      }
      if (broken != Adamw8Break::no_sign_fix && std::signbit(sm.code[cm]) != std::signbit(m[i]))
        cm += m[i] > 0.0f ? 1 : -1;
      st.mc[i] = uint8_t(cm);
      st.vc[i] = uint8_t(cv);
    }
  }
}

}  // namespace mgtest
