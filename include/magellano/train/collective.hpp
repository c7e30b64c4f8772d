// Collective: what data-parallel training needs from its ranks, and nothing of how they talk.
// The trainer calls these; dist/ implements them over MPI (dist/mpi_collective.hpp). A single
// process trains with no Collective at all (TrainOptions::ranks == nullptr) and never calls one.
//
// Every call is collective: all ranks make the same calls in the same order with the same
// sizes, and each returns the same result on every rank (a sum's result is bit-identical
// across ranks: every rank receives the same reduced values, not its own re-summation).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace magellano::train {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;  // 0 .. size() - 1; rank 0 writes files and prints
  virtual int size() const = 0;  // ranks in the run (>= 1)

  // Starts values <- the element-wise sum over ranks, in fp32, on `values` (which must stay alive
  // and untouched) and returns a handle; wait(handle) finishes it. Lets the host read the next
  // bucket while this one travels.
  virtual int start_sum(std::span<float> values) = 0;
  // The same over bfloat16 bits: each addition widens both operands to fp32 exactly and rounds
  // the sum to the nearest bf16 (ties to even), wherever the implementation adds.
  virtual int start_sum_bf16(std::span<uint16_t> values) = 0;
  // Starts a reduce-scatter: `values` holds counts[0] + ... + counts[size() - 1] values, block r
  // (counts[r] values, after blocks 0 .. r - 1) bound for rank r; after wait(handle),
  // values[0, counts[rank()]) holds the element-wise fp32 sum over ranks of this rank's block
  // (the rest of `values` is then unspecified). `values` and `counts` must stay alive and
  // untouched until then. Each element is summed as start_sum would sum it over the same ranks
  // (for 2 ranks necessarily: a + b is b + a in IEEE arithmetic), at about (N - 1) / N of the
  // bytes each rank sends instead of 2 (N - 1) / N.
  virtual int start_sum_scatter(std::span<float> values, std::span<const int> counts) = 0;
  // The same over bfloat16 bits, added as in start_sum_bf16.
  virtual int start_sum_scatter_bf16(std::span<uint16_t> values, std::span<const int> counts) = 0;
  // Starts copying `bytes` of rank `root` into `bytes` of every other rank (which must stay alive
  // and untouched until wait(handle); at most 1 GiB per call).
  virtual int start_broadcast(std::span<uint8_t> bytes, int root) = 0;
  virtual void wait(int handle) = 0;
  // The bytes this rank has sent through start_sum*, start_sum_scatter* and start_broadcast so
  // far, counted as a bandwidth-optimal algorithm sends them (for 2 ranks, any algorithm that
  // sends each needed byte once): a sum of b bytes 2 (N - 1) / N b (a reduce-scatter, then an
  // all-gather); a reduce-scatter the bytes of the other ranks' blocks; a broadcast of b bytes
  // (N - 1) b from its root, 0 from the others. The small calls below are not counted.
  virtual uint64_t bytes_sent() const = 0;
  // The sum over ranks of one double (loss sums; exact for the few ranks of a run in practice).
  virtual double sum(double value) = 0;
  // Whether `value` is true on every rank.
  virtual bool all(bool value) = 0;
  // Every rank's value, in rank order.
  virtual std::vector<uint64_t> gather_all(uint64_t value) = 0;
  // On rank `root`: every rank's `bytes` (sizes may differ) concatenated in rank order; on the
  // other ranks: nothing.
  virtual std::vector<uint8_t> gather_bytes(std::span<const uint8_t> bytes, int root) = 0;
};

}  // namespace magellano::train
