// bench_train: training throughput of a config's model on a device: tokens/s of full steps
// (forward, backward, AdamW) on random tokens, the tracker's measured peak device memory next
// to `magellano info`'s estimate, and model-FLOP utilisation:
//   MFU = 6 · active parameters per token · tokens/s / reference fp32 GEMM rate
// with the reference the best BLAS on the same hardware: OpenBLAS SGEMM on a CPU device
// (measured here, when built with OpenBLAS), or a rate passed in with --reference-gflops
// (cuBLAS through PyTorch on the GPU machine, measured in the same session by gpu_run.sh).
// Usage: bench_train --config FILE [--device D] [--batch B] [--seq-len L] [--steps N]
//                    [--reference-gflops G --reference-name NAME]
#include <iostream>
#include <random>

#include "bench_util.hpp"
#include "magellano/optim/adamw.hpp"
#include "magellano/train/checkpoint.hpp"
#include "magellano/train/model_size.hpp"
#if MAGELLANO_HAVE_OPENBLAS
#include <cblas.h>
#endif

using namespace magellano;

int main(int argc, char** argv) {
  std::string config, device, ref_name;
  int64_t batch = 0, seq_len = 512, steps = 3;
  double ref_gflops = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return bench::option_value(argc, argv, i); };
    if (a == "--config") config = next();
    else if (a == "--device") device = next();
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--seq-len") seq_len = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--reference-gflops") ref_gflops = std::stod(next());
    else if (a == "--reference-name") ref_name = next();
    else {
      std::cerr << "usage: bench_train --config FILE [--device D] [--batch B] [--seq-len L] [--steps N] "
                   "[--reference-gflops G --reference-name NAME]\n";
      return 2;
    }
  }
  try {
    if (config.empty()) throw Error("bench_train: --config FILE is required.");
    auto cfg = train::load_config(config);
    if (batch > 0) cfg.train.batch_size = batch;
    const int64_t B = cfg.train.batch_size, L = seq_len, V = cfg.model.vocab_size;
    auto ctx = Context::create(device);
    nlohmann::json out;
    out["date"] = bench::today();
    out["device"] = to_json(ctx->device());
    out["config"] = config;
    out["batch"] = B;
    out["seq_len"] = L;
    train::Config ecfg = cfg;  // LoRA / QLoRA and checkpointing from the config, at B x L
    ecfg.train.batch_size = B, ecfg.train.seq_len = L;
    const auto counts = train::count_params(cfg);
    const auto estimate = train::estimate_memory(ecfg);
    out["params"] = train::to_json(counts);
    out["memory_estimate"] = train::to_json(estimate);
#if MAGELLANO_HAVE_OPENBLAS
    if (ctx->device().type == "cpu" && ref_gflops <= 0) {
      const int64_t n = 4096;
      std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
      auto run = [&] { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n); };
      run();
      ref_gflops = 2.0 * n * n * n / bench::median_host_seconds(3, run) / 1e9;
      ref_name = "OpenBLAS sgemm 4096, same run";
    }
#endif
    out["device_gemm"] = bench::gemm_rate(*ctx, 4096, 4096, 4096, 3);

    nn::Model model(*ctx, train::model_spec(cfg), 1);
    optim::AdamW adamw(*ctx, model.trainable_parameters(), {.lr = 1e-4f});
    out["params_trainable"] = counts.trainable;
    // The peak of the training steps (a QLoRA model passes through one fp32 block per block
    // while it is built and quantized).
    ctx->memory().reset_peaks();
    std::mt19937_64 rng(1);
    std::vector<int32_t> x(B * L), y(B * L);
    for (auto& v : x) v = static_cast<int32_t>(rng() % V);
    for (auto& v : y) v = static_cast<int32_t>(rng() % V);
    Tensor tx = Tensor::from_host_i32(*ctx, Shape{B, L}, x), ty = Tensor::from_host_i32(*ctx, Shape{B, L}, y);
    auto step = [&] {
      adamw.zero_grad();
      nn::TrainingScope training;
      auto lo = model.loss(tx, ty);
      autograd::backward(lo.loss);
      adamw.step(1e-4f, 1.0f);
    };
    const double s = bench::median_seconds(*ctx, static_cast<int>(steps), step);
    const double tps = B * L / s;
    const double model_gflops = 6.0 * counts.active_per_token * tps / 1e9;
    out["step_s"] = s;
    out["tokens_per_s"] = tps;
    out["model_gflops"] = model_gflops;
    out["peak_device_bytes"] = ctx->memory().peak_total();
    out["peak_by_category"] = ctx->memory().to_json();
    out["estimate_total_bytes"] = estimate.total;
    out["peak_over_estimate"] = double(ctx->memory().peak_total()) / double(estimate.total);
    if (ref_gflops > 0) {
      out["reference_gemm"] = {{"name", ref_name}, {"gflops", ref_gflops}};
      out["mfu"] = model_gflops / ref_gflops;
    }
    out["mfu_vs_device_gemm"] = model_gflops / out["device_gemm"]["gflops"].get<double>();
    std::cerr << config << " B=" << B << " L=" << L << ": " << tps << " tokens/s, peak "
              << format_bytes(ctx->memory().peak_total()) << " (estimate " << format_bytes(estimate.total)
              << "), " << model_gflops << " model GFLOP/s\n";
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
