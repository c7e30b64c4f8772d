// train::Collective over MPI (Open MPI from Debian: openmpi-bin, libopenmpi-dev), one rank per
// process of `mpirun -np N magellano train ...`, on MPI_COMM_WORLD. Sums are MPI_SUM over
// MPI_FLOAT / MPI_DOUBLE (MPI_Iallreduce, in place; ZeRO's gradients MPI_Ireduce_scatter, in
// place: each rank keeps its block's sums at the buffer's start): every rank receives the
// same reduced values, and the same sizes on the same ranks reduce in the same order each run
// (the MPI standard's advice that Open MPI follows), so runs repeat bit for bit.
// A build without MPI (CMake found none) still compiles this file: start() then throws an Error
// saying that the binary lacks MPI and how to get it.
//
// Hangs: every collective is started non-blocking and polled (MPI_Test, then 100 µs naps) until
// MAGELLANO_DIST_TIMEOUT seconds (default 1800; it must cover the longest checkpoint write and
// evaluation, which the other ranks wait for) have passed; then this rank throws an Error saying
// which rank waited for what, and the run ends (mpirun stops the other ranks). Pass the variable
// to every host with `mpirun -x MAGELLANO_DIST_TIMEOUT`.
#pragma once
#include <memory>
#include <vector>

#include "magellano/dist/launch.hpp"
#include "magellano/train/collective.hpp"

namespace magellano::dist {

class MpiCollective final : public train::Collective {
 public:
  // Starts MPI (MPI_Init_thread, funneled: only the main thread calls MPI) for a launch of
  // launch.size ranks; the local rank and size come from MPI's shared-memory split.
  static std::unique_ptr<MpiCollective> start(const Launch& launch, int* argc, char*** argv);
  ~MpiCollective() override;  // MPI_Finalize, unless abandon()ed
  // This rank is failing: exit without MPI_Finalize (which could wait for ranks that never come),
  // so mpirun sees a rank end with an error and stops the others.
  void abandon() { abandoned_ = true; }

  Launch launch() const { return launch_; }
  int rank() const override { return launch_.rank; }
  int size() const override { return launch_.size; }
  int start_sum(std::span<float> values) override;
  int start_sum_bf16(std::span<uint16_t> values) override;  // a user MPI_Op over MPI_UINT16_T
  // MPI_Ireduce_scatter, in place (MPI_IN_PLACE: the result lands at the start of `values`).
  int start_sum_scatter(std::span<float> values, std::span<const int> counts) override;
  int start_sum_scatter_bf16(std::span<uint16_t> values, std::span<const int> counts) override;
  int start_broadcast(std::span<uint8_t> bytes, int root) override;  // MPI_Ibcast of MPI_BYTE
  void wait(int handle) override;
  uint64_t bytes_sent() const override { return bytes_sent_; }
  double sum(double value) override;
  bool all(bool value) override;
  std::vector<uint64_t> gather_all(uint64_t value) override;
  // The sizes through gather_all, then MPI_Isend / MPI_Irecv to the root in pieces of 1 GiB.
  std::vector<uint8_t> gather_bytes(std::span<const uint8_t> bytes, int root) override;

 private:
  struct Requests;  // the MPI_Request of each start_sum handle (mpi.h stays out of this header)
  explicit MpiCollective(Launch l);
  // The values of a reduce-scatter; throws unless counts has one entry per rank and they sum to n.
  void check_counts(size_t n, std::span<const int> counts, const char* call) const;
  void finish(void* request, const char* what);  // polls an MPI_Request until done or the timeout
  Launch launch_;
  [[maybe_unused]] double timeout_s_ = 1800;  // (unused in a build without MPI)
  bool abandoned_ = false;
  uint64_t bytes_sent_ = 0;
  std::unique_ptr<Requests> requests_;
};

}  // namespace magellano::dist
