// `bench scan`: the selective scan's forward + backward on the device (ops::selective_scan with
// autograd), against the minimum bytes it must move, so the percentage of peak is its share of
// the copy bandwidth; and the same work as a plain sequential single-threaded C++ loop (forward
// storing every state, then backward) on the host (`--host 0` skips it).
//   minimum bytes: forward reads u, delta, z (3·BLE) and B, C (2·BLN), writes out (BLE);
//   backward reads u, delta, z, dout (4·BLE) and B, C (2·BLN), writes du, ddelta, dz (3·BLE)
//   and dB, dC (2·BLN): (11·BLE + 6·BLN) floats in all.
// --shapes BxLxE[,BxLxE...] (default 4x512x1024,1x4096x2048; N = 16). MAGELLANO_SCAN picks the
// mapping (ops/selective_scan.hpp); with MAGELLANO_PROFILE=1 each result carries the device time
// per kernel of one more forward + backward.
#include <cmath>
#include <random>
#include <sstream>

#include "bench.hpp"
#include "magellano/ops/selective_scan.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {

constexpr int64_t kN = 16;

struct HostScan {  // the plain loop: fp32, one thread, every state kept
  int64_t b, l, e;
  std::vector<float> u, delta, z, A, Bm, Cm, D, bias, dout;
  float run() const {
    std::vector<float> H((l + 1) * kN), out(b * l * e), du(u.size()), dd(u.size()), dz(u.size()),
        dB(Bm.size(), 0.f), dC(Cm.size(), 0.f), dA(A.size(), 0.f);
    for (int64_t bb = 0; bb < b; ++bb)
      for (int64_t ee = 0; ee < e; ++ee) {
        std::fill(H.begin(), H.begin() + kN, 0.f);
        for (int64_t t = 0; t < l; ++t) {
          const int64_t i = (bb * l + t) * e + ee, bc = (bb * l + t) * kN;
          const float dt = std::log1p(std::exp(delta[i] + bias[ee]));
          float y = D[ee] * u[i];
          for (int64_t n = 0; n < kN; ++n) {
            H[(t + 1) * kN + n] = std::exp(dt * A[ee * kN + n]) * H[t * kN + n] + dt * Bm[bc + n] * u[i];
            y += Cm[bc + n] * H[(t + 1) * kN + n];
          }
          out[i] = y * z[i] / (1.f + std::exp(-z[i]));
        }
        float G[kN] = {};
        for (int64_t t = l - 1; t >= 0; --t) {
          const int64_t i = (bb * l + t) * e + ee, bc = (bb * l + t) * kN;
          const float raw = delta[i] + bias[ee], dt = std::log1p(std::exp(raw));
          float y = D[ee] * u[i];
          for (int64_t n = 0; n < kN; ++n) y += Cm[bc + n] * H[(t + 1) * kN + n];
          const float sg = 1.f / (1.f + std::exp(-z[i]));
          dz[i] = dout[i] * y * sg * (1 + z[i] * (1 - sg));
          const float dy = dout[i] * z[i] * sg;
          float dx = dy * D[ee], ddt = 0;
          for (int64_t n = 0; n < kN; ++n) {
            const float an = std::exp(dt * A[ee * kN + n]), gn = G[n] + dy * Cm[bc + n];
            dC[bc + n] += dy * H[(t + 1) * kN + n];
            dB[bc + n] += gn * dt * u[i];
            dx += gn * dt * Bm[bc + n];
            ddt += gn * (A[ee * kN + n] * an * H[t * kN + n] + Bm[bc + n] * u[i]);
            dA[ee * kN + n] += gn * dt * an * H[t * kN + n];
            G[n] = gn * an;
          }
          du[i] = dx;
          dd[i] = ddt / (1.f + std::exp(-raw));
        }
      }
    return out[0] + du[0] + dd[0] + dz[0] + dB[0] + dC[0] + dA[0];
  }
};

std::vector<float> rnd(int64_t n, std::mt19937& g, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<Result> bench_shape(Context& ctx, int64_t b, int64_t l, int64_t e, int repeats, bool host) {
  std::mt19937 g(1);
  HostScan hs{b, l, e, rnd(b * l * e, g, -1, 1), rnd(b * l * e, g, -3, -1), rnd(b * l * e, g, -1, 1),
              rnd(e * kN, g, -4, -0.5), rnd(b * l * kN, g, -1, 1), rnd(b * l * kN, g, -1, 1),
              rnd(e, g, 0.5, 1.5), rnd(e, g, -0.5, 0.5), rnd(b * l * e, g, -1, 1)};
  auto up = [&](const std::vector<float>& v, Shape s) {
    Tensor t = Tensor::from_host(ctx, s, v);
    t.set_requires_grad(true);
    return t;
  };
  const Shape ble{b, l, e}, bln{b, l, kN};
  Tensor u = up(hs.u, ble), delta = up(hs.delta, ble), z = up(hs.z, ble), A = up(hs.A, Shape{e, kN}),
         Bm = up(hs.Bm, bln), Cm = up(hs.Cm, bln), D = up(hs.D, Shape{e}), bias = up(hs.bias, Shape{e});
  Tensor dout = Tensor::from_host(ctx, ble, hs.dout);
  const double s = median_seconds(ctx, repeats, [&] {
    for (Tensor* t : {&u, &delta, &z, &A, &Bm, &Cm, &D, &bias}) t->zero_grad();
    Tensor out = ops::selective_scan(u, delta, A, Bm, Cm, D, z, bias);
    autograd::backward(out, dout);
  });
  if (!std::isfinite(u.grad().to_host()[0])) throw Error("scan benchmark: non-finite gradient");
  const double s_fwd = median_seconds(ctx, repeats, [&] {
    autograd::NoGradScope no_grad;
    ops::selective_scan(u, delta, A, Bm, Cm, D, z, bias);
  });
  nlohmann::json profile;
  if (ctx.profiler().enabled()) {  // MAGELLANO_PROFILE=1: device time per kernel of one more run
    ctx.profiler().discard();
    for (Tensor* t : {&u, &delta, &z, &A, &Bm, &Cm, &D, &bias}) t->zero_grad();
    autograd::backward(ops::selective_scan(u, delta, A, Bm, Cm, D, z, bias), dout);
    for (const auto& k : ctx.profiler().report())
      profile.push_back({{"kernel", k.name}, {"calls", k.calls}, {"device_ms", k.seconds * 1e3}});
  }
  const double bytes = (11.0 * b * l * e + 6.0 * b * l * kN) * 4;
  Result r;
  r.name = "scan_fwd_bwd";
  r.sizes = {{"B", b}, {"L", l}, {"E", e}, {"N", kN}};
  r.median_s = s;
  r.repeats = repeats;
  r.gbps = bytes / s / 1e9;
  r.extra = {{"min_bytes", bytes}, {"forward_s", s_fwd}};
  if (!profile.is_null()) r.extra["profile_fwd_bwd"] = profile;
  std::vector<Result> out = {r};
  if (host) {
    float sink = 0;
    Result h = r;
    h.host = true;
    h.repeats = 1;
    h.median_s = median_host_seconds(1, [&] { sink += hs.run(); });
    if (!std::isfinite(sink)) throw Error("scan host loop: non-finite result");
    h.gbps = bytes / h.median_s / 1e9;
    h.extra = {{"min_bytes", bytes}, {"threads", 1}};
    out[0].extra["speedup_vs_host_loop"] = h.median_s / s;
    out.push_back(h);
  }
  return out;
}

std::vector<Result> run_scan(Context& ctx, const Peaks&, const Options& opts) {
  const int repeats = repeats_option(opts, 3);
  const bool host = integer_in(opts, "host", 0, 1) == 1;
  std::stringstream ss(opts.str("shapes"));
  std::vector<Result> out;
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    long long b = 0, l = 0, e = 0;
    char tail = 0;
    if (std::sscanf(tok.c_str(), "%lldx%lldx%lld%c", &b, &l, &e, &tail) != 3 || b < 1 || l < 1 || e < 1)
      throw Error("--shapes: bad shape '" + tok + "'; use BxLxE with positive sizes, e.g. 4x512x1024.");
    for (auto& r : bench_shape(ctx, b, l, e, repeats, host)) out.push_back(std::move(r));
  }
  if (out.empty()) throw Error("--shapes: no shape given; use BxLxE[,BxLxE...].");
  return out;
}

RegisterBench reg{{"scan", "Selective scan forward + backward vs its minimum bytes; host loop (GB/s)",
                   {{"shapes", Key::text, "4x512x1024,1x4096x2048", "BxLxE[,BxLxE...] (N = 16)"},
                    {"host", Key::integer, "1", "0: skip the host loop"}},
                   run_scan}};

}  // namespace
}  // namespace magellano::bench
