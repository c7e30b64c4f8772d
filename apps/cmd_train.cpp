// magellano train --config FILE [--set key.path=value]... [--device D] [--resume DIR | --init-from DIR]
// Under `mpirun -np N` (N > 1) every process is one rank of a data-parallel run (dist/): rank 0
// prints and writes; --device gpu gives each rank a GPU of its host by local rank, a list
// "0:0,0:1" one entry per local rank; CPU ranks share the cores (dist/rank_device.hpp).
#include <unistd.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <thread>

#include "command.hpp"
#include "options.hpp"
#include "magellano/dist/mpi_collective.hpp"
#include "magellano/dist/rank_device.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/trainer.hpp"
#include "magellano/train/trainer_state.hpp"

namespace po = boost::program_options;
using namespace magellano;

namespace {

int train_ranks(const train::Config& cfg, const std::string& device_option, const std::string& resume,
                const std::string& init_from, dist::MpiCollective* ranks);

int run_train(int argc, char** argv) {
  po::options_description opts(
      "magellano train: train a model from a JSON config (see configs/README.md)\n"
      "--device overrides the config's device.\nOptions");
  std::string config_path, resume, init_from;
  std::vector<std::string> sets;
  cli::add_common_options(opts, cli::kDevice);
  opts.add_options()
      ("config", po::value(&config_path), "training config (JSON); with --resume, defaults to the checkpoint's")
      ("set", po::value(&sets)->composing(), "override a key: --set train.steps=100 (repeatable)")
      ("resume", po::value(&resume), "continue from this checkpoint directory (bit-exact)")
      ("init-from", po::value(&init_from), "start from the weights of this checkpoint (Magellano, or Hugging Face Mamba / Mamba2 / Granite 4.0-H / Jamba) to fine-tune");
  po::variables_map vm;
  if (!cli::parse_options(opts, argc, argv, vm)) return 0;
  if (config_path.empty() && resume.empty())
    throw Error("train: give --config FILE (e.g. configs/tiny.json), or --resume DIR.");
  train::Config cfg;
  if (!config_path.empty()) {
    cfg = train::load_config(config_path, sets);
  } else {
    cfg = train::load_config((std::filesystem::path(resume) / "config.json").string(), sets);
  }
  if (!resume.empty()) train::read_trainer_state(resume);  // a bad one is refused before any device work
  const dist::Launch launch = dist::launch_from_environment();
  std::unique_ptr<dist::MpiCollective> ranks;
  if (launch.distributed()) ranks = dist::MpiCollective::start(launch, nullptr, nullptr);
  try {
    return train_ranks(cfg, cli::device_option(vm), resume, init_from, ranks.get());
  } catch (...) {
    if (ranks) ranks->abandon();  // mpirun then ends the other ranks
    throw;
  }
}

int train_ranks(const train::Config& cfg, const std::string& device_option, const std::string& resume,
                const std::string& init_from, dist::MpiCollective* ranks) {
  std::string device = !device_option.empty() ? device_option : cfg.device;
  const bool lead = !ranks || ranks->rank() == 0;
  unsigned threads = 0;
  if (ranks) {
    threads = dist::limit_cpu_threads(ranks->launch(), std::thread::hardware_concurrency());
    device = dist::rank_device(device, ranks->launch(), list_devices());
  }
  auto ctx = Context::create(device);
  if (lead) std::cout << "device: " << ctx->device().name << " [" << ctx->device().platform_name << "]\n";
  if (ranks && lead) {
    std::cout << "data parallel: " << ranks->size() << " ranks over MPI, global batch " << cfg.train.batch_size
              << " x " << cfg.train.grad_accum << " x " << ranks->size() << " windows";
    if (threads) std::cout << "; PoCL threads per rank: " << threads;
    std::cout << "\n";
  }
  train::TrainOptions options;
  if (!resume.empty()) options.resume = resume;
  if (!init_from.empty()) options.init_from = init_from;
  options.out = lead ? &std::cout : nullptr;
  options.terminal = lead && ::isatty(STDOUT_FILENO);
  options.ranks = ranks;
  const auto s = train::train(cfg, *ctx, options);
  if (!lead) return 0;
  std::cout << "trained " << s.steps << " steps (" << static_cast<long long>(s.tokens_per_s)
            << " tokens/s, peak device memory " << format_bytes(s.peak_device_bytes) << " in tensors, "
            << format_bytes(s.peak_reserved_bytes) << " held); final training loss "
            << s.final_loss;
  if (s.val) std::cout << "; validation loss " << s.val->loss << ", perplexity " << s.val->perplexity;
  std::cout << "\ncheckpoint: " << s.checkpoint.string() << "\n";
  if (ranks) std::cout << "gradient all-reduce: " << s.allreduce_seconds << " s in total\n";
  return 0;
}

cli::RegisterCommand reg{{"train", "Train a model from a JSON config", run_train}};

}  // namespace
