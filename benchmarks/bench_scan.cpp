// bench_scan: the selective scan's forward + backward on the device, against the minimum bytes
// it must move (as a share of the copy bandwidth measured in the same run) and against a plain
// sequential single-threaded C++ loop (forward storing every state, then backward) on the host.
//   minimum bytes: forward reads u, delta, z (3·BLE) and B, C (2·BLN), writes out (BLE);
//   backward reads u, delta, z, dout (4·BLE) and B, C (2·BLN), writes du, ddelta, dz (3·BLE)
//   and dB, dC (2·BLN): (11·BLE + 6·BLN) floats in all.
// Usage: bench_scan [--device D] [--shapes 4x512x1024,1x4096x2048] [--repeats R] [--no-host]
#include <cmath>
#include <iostream>
#include <random>
#include <sstream>

#include "bench_util.hpp"
#include "magellano/ops/selective_scan.hpp"

using namespace magellano;

namespace {

constexpr int64_t kN = 16;

struct HostScan {  // the plain loop: fp32, one thread, every state kept
  int64_t b, l, e;
  std::vector<float> u, delta, z, A, Bm, Cm, D, bias, dout;
  void run() const {
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
    volatile float sink = out[0] + du[0] + dd[0] + dz[0] + dB[0] + dC[0] + dA[0];
    (void)sink;
  }
};

std::vector<float> rnd(int64_t n, std::mt19937& g, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

nlohmann::json bench_shape(Context& ctx, int64_t b, int64_t l, int64_t e, int repeats,
                           double copy_gbps, bool host) {
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
  const double s = bench::median_seconds(ctx, repeats, [&] {
    for (Tensor* t : {&u, &delta, &z, &A, &Bm, &Cm, &D, &bias}) t->zero_grad();
    Tensor out = ops::selective_scan(u, delta, A, Bm, Cm, D, z, bias);
    autograd::backward(out, dout);
  });
  const double s_fwd = bench::median_seconds(ctx, repeats, [&] {
    autograd::NoGradScope no_grad;
    ops::selective_scan(u, delta, A, Bm, Cm, D, z, bias);
  });
  const double bytes = (11.0 * b * l * e + 6.0 * b * l * kN) * 4;
  nlohmann::json r = {{"name", "scan_fwd_bwd"}, {"B", b}, {"L", l}, {"E", e}, {"N", kN},
                      {"median_s", s}, {"forward_s", s_fwd}, {"min_bytes", bytes}, {"gbps", bytes / s / 1e9},
                      {"pct_of_copy_peak", 100.0 * bytes / s / 1e9 / copy_gbps}};
  if (host) {
    const double hs_s = bench::median_host_seconds(1, [&] { hs.run(); });
    r["host_loop_s"] = hs_s;
    r["speedup_vs_host_loop"] = hs_s / s;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device, shapes = "4x512x1024,1x4096x2048";
  int repeats = 3;
  bool host = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
    else if (a == "--repeats" && i + 1 < argc) repeats = std::stoi(argv[++i]);
    else if (a == "--no-host") host = false;
    else {
      std::cerr << "usage: bench_scan [--device D] [--shapes BxLxE,...] [--repeats R] [--no-host]\n";
      return 2;
    }
  }
  try {
    auto ctx = Context::create(device);
    nlohmann::json out;
    out["date"] = bench::today();
    out["device"] = to_json(ctx->device());
    out["copy"] = bench::copy_bandwidth(*ctx, 256, 5);
    const double peak = out["copy"]["gbps"];
    out["results"] = nlohmann::json::array();
    std::stringstream ss(shapes);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
      int64_t b = 0, l = 0, e = 0;
      if (std::sscanf(tok.c_str(), "%ldx%ldx%ld", &b, &l, &e) != 3) throw Error("bad shape '" + tok + "': use BxLxE");
      auto r = bench_shape(*ctx, b, l, e, repeats, peak, host);
      std::cerr << tok << ": " << r["median_s"].get<double>() * 1e3 << " ms, "
                << r["pct_of_copy_peak"].get<double>() << "% of copy peak\n";
      out["results"].push_back(r);
    }
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
