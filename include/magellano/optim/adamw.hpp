// AdamW with torch.optim.AdamW's update (decoupled weight decay, bias correction, eps outside
// the square root), fp32 moments, global-norm gradient clipping, over packed parameters.
//
// Use:
//   optim::AdamW opt(ctx, model.parameters(), {.lr = 3e-4f, .weight_decay = 0.1f});
//   optim::LrSchedule sched{3e-4f, 3e-5f, 100, 10000};
//   for each step s:
//     opt.zero_grad();
//     for each of A micro-batches: backward(loss_k · S)   // gradients add up (S: loss scale)
//     opt.step(sched.at(opt.step_count()), 1.0f, 1.0f / (A · S));  // mean, unscale, clip, update
//     every log interval: opt.last_grad_norm().item()      // the one scalar read back
// Nothing is read back to the host inside step(): the clipping coefficient is computed and
// applied on the device.
//
// Per element, t = step count after increment (torch's order and rounding points), with the
// stored gradient g and grad_scale s (1 / (micro-batches · loss scale), default 1):
//   g <- g * (s * min(1, max_norm / (||s g||_2 + 1e-6)))   when max_norm > 0 (clip_grad_norm_)
//   g <- g * s                                              otherwise
//   p <- p * (1 - lr * wd)                          decay group only
//   m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^t)) * (m / (sqrt(v) / sqrt(1 - b2^t) + eps))
// Step scalars are computed on the host in double and rounded to float (as torch's fp32 kernels
// round theirs); the betas enter as the float values of the config. Stored gradients are never
// modified (the kernel scales them as it reads them), so fp16 gradients are unscaled in fp32
// and cannot underflow on the way.
//
// Parameter storage: each parameter is f32 or f16 (the pack keeps them in chunks of one
// dtype); the moments are fp32 for both.
//   f32: parameters and gradients f32, 16 bytes per parameter with the moments, 28 bytes of
//        traffic per step.
//   f16: parameters and gradients stored as fp16: 12 bytes per parameter, 22 bytes of traffic.
//        The update is the same fp32 arithmetic on the fp16 values (read exactly), and the new
//        parameter is rounded to the nearest fp16. There is NO fp32 master copy, by design (it
//        would cost the memory fp16 storage saves): an update smaller than half an fp16 ulp of
//        the parameter is lost. fp16 has 11 significant bits, so a parameter of magnitude |p|
//        keeps updates of about |p| * 2^-11 or more: with lr 3e-4 and |p| ~ 0.02 Adam's
//        ~lr-sized steps survive, but the weight-decay shrink (|p| * lr * wd ~ 6e-7) is
//        rounded away unless it coincides with an update, and late small-lr steps on large
//        weights stall. Values beyond 65504 overflow to inf. nn::ModelSpec::weight_dtype
//        stores only the matrix weights this way, for this reason.
//        With stochastic_rounding the new value is instead rounded up or down at random with
//        the probabilities that make its expectation the fp32 result (cl/adamw.cl,
//        round_half_stochastic): small updates and the decay then move the parameter on
//        average rather than vanishing. The random bits hash the step count, the chunk and
//        the element, so a run is still deterministic and resumes bit-exactly.
//
// Moment storage (AdamWConfig::states):
//   fp32  m and v in fp32, 8 bytes per parameter (torch's AdamW; the default).
//   int8  bitsandbytes' 8-bit blockwise dynamic quantization (optim/dynamic_map.hpp): m with the
//         signed map, v with the unsigned one, one code byte each per parameter plus an fp32
//         absmax per block of 256: 2 + 8/256 bytes per parameter. Each step dequantizes, applies
//         the fp32 update above (bitsandbytes' own PyTorch path applies decay and update in this
//         order; its CUDA kernel folds the bias corrections differently), and re-quantizes with
//         the block's new absmax (cl/adamw.cl adamw8_step). Deviations from bitsandbytes:
//         blocks are 256 consecutive elements of a pack chunk, and parameters start at
//         64-element boundaries, so a block may span the end of one small tensor and the start
//         of the next (they share an absmax; bitsandbytes blocks each tensor on its own); every
//         parameter is quantized (bitsandbytes keeps tensors under 4096 elements in fp32); a
//         non-finite gradient is not special-cased (the trainer skips such steps).
// Placement (AdamWConfig::offload):
//   device  the moments live in device memory.
//   host    "paged": the moments live in host memory; each step streams every pack chunk through
//           one device staging buffer per moment array in pages of page_elements (a multiple
//           of 256): upload, the same kernel on that range, download. Bit-identical to device
//           placement (the kernels work per element or per 256-block, pages start at block
//           boundaries, and the stochastic-rounding bits use the element's chunk position).
//           Transfers are blocking (no double buffering): a step moves the moment bytes to the
//           device and back on top of the kernel's traffic.
// Sharding (AdamWConfig::shard, shards; ZeRO stage 1): with shards > 1 this optimizer keeps the
//           moments of its share of the pack's elements only (optim/shard.hpp: one contiguous,
//           block-aligned range per chunk) and step() updates only the parameters of that range,
//           with the same kernels, scalars and stochastic-rounding bits as an unsharded
//           optimizer: each owned element ends bit-identical to the unsharded result, given the
//           same gradients. The gradient norm for clipping is taken over every gradient: either
//           from the local gradients (all summed on every rank) or, with set_partials_sum()
//           (each rank holds the summed gradients of its own share only: a reduce-scatter,
//           train/gradient_sync.hpp), from this share's per-group partial sums of squares
//           summed over the shards. With norm_split = shards (below) no group spans two shares,
//           so every partial is one share's (the others add exact zeros) and the norm is
//           bit-identical to that of an unsharded optimizer with the same norm_split.
//           The other elements' parameters are left alone: the caller brings them from their
//           owners (train/zero_shard.hpp). Either placement. Checkpoints: owned_state() gives
//           this share's bytes of each moment array; the shares concatenated in shard order
//           are the full arrays, which state_st(full) turns into the unsharded entries.
//           load_state(reader) reads the unsharded entries and keeps this share's part, so a
//           checkpoint loads into any number of shards.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "magellano/io/safetensors.hpp"
#include "magellano/optim/pack.hpp"
#include "magellano/optim/schedule.hpp"
#include "magellano/optim/shard.hpp"

namespace magellano::optim {

enum class StateFormat { fp32, int8 };        // the moments' storage (above)
enum class StatePlacement { device, host };  // where the moments live (above)

struct AdamWConfig {
  float lr = 3e-4f;  // used by step() without an explicit lr
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;     // for parameters with Parameter::weight_decay
  uint64_t max_chunk_bytes = 0;  // see ParameterPack; 0 = min(max allocation, 256 MiB)
  bool stochastic_rounding = false;  // f16 parameters: round the update stochastically (above)
  StateFormat states = StateFormat::fp32;
  StatePlacement offload = StatePlacement::device;
  // int8: the kernel mapping; automatic = rows on CPUs (one work-item per block: PoCL runs the
  // barrier-heavy work-group kernel ~20x slower), work-group elsewhere. Same bits either way.
  enum class Int8Mapping { automatic, group, rows } int8_mapping = Int8Mapping::automatic;
  int64_t page_elements = int64_t{1} << 22;  // host placement: elements per page (4 Mi: 32 MiB of
                                             // fp32 moments, 8 MiB of codes); rounded up to 256
  // ZeRO stage 1 (see "Sharding" above): this optimizer is share `shard` of `shards`.
  int shard = 0, shards = 1;
  // The gradient norm's partial sums of squares are taken within each share of
  // shard_ranges(pack, r, norm_split), r = 0 .. norm_split - 1 (no group spans two shares), so
  // that the norm is the same bits whether each rank sums its share's partials and the ranks
  // add them up (set_partials_sum) or one rank sums every gradient: data-parallel runs set it
  // to the number of ranks with or without ZeRO. 1: groups over whole chunks.
  int norm_split = 1;
};

// Bytes of moment storage per parameter element: 8 (fp32) or 2 + 8 / 256 (int8).
double moment_bytes_per_element(StateFormat f);

class AdamW {
 public:
  // Packs params (the trainable ones) as ParameterPack describes; moments start at zero.
  AdamW(Context& ctx, const std::vector<Parameter>& params, AdamWConfig config = {});

  void zero_grad() { pack_.zero_grad(); }
  void scale_grads(float s) { pack_.scale_grads(s); }

  // Global L2 norm over all packed gradients times grad_scale, as a new (1) f32 tensor on the
  // device (two-stage fixed-order reduction; nothing is read back).
  Tensor grad_norm(float grad_scale = 1.0f);
  // The norm computed by the last step() that clipped, (1) f32, a view of the optimizer's own
  // buffer (the next step overwrites it); undefined before any clipping step.
  Tensor last_grad_norm() const;
  // Sharded only, with norm_split = shards (see "Sharding" above): from now on the norm counts
  // only this share's gradients into its partial sums (partials: (G) f32, G = the partial-sum groups of all
  // chunks), then calls sum(partials), which must replace them, on the device, by their
  // element-wise sum over all shards (the same on every shard; a collective call).
  void set_partials_sum(std::function<void(const Tensor& partials)> sum);

  // One update of every packed parameter: one launch per chunk, plus (max_grad_norm > 0) one
  // per chunk and one more for the norm. max_grad_norm <= 0: no clipping. The gradients are
  // read times grad_scale (above); the norm that clipping uses is that of the scaled ones.
  void step(float lr, float max_grad_norm = 0.0f, float grad_scale = 1.0f);
  void step() { step(config_.lr); }

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t t) { step_ = t; }

  // Checkpointable state, plus step_count(). fp32 moments: "<param name>.exp_avg" and
  // "<param name>.exp_avg_sq", f32 with the parameter's shape. int8 moments, per pack chunk k
  // (blocks span parameters): "adamw8.<k>.exp_avg.codes", "adamw8.<k>.exp_avg_sq.codes" (numel)
  // u8 and "adamw8.<k>.exp_avg.absmax", "adamw8.<k>.exp_avg_sq.absmax" (ceil(numel / 256)) f32.
  // state_tensors(): device views of them (device placement only, unsharded; else throws).
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // The same entries as stored bytes, for either placement (checkpoints); unsharded only.
  std::vector<std::pair<std::string, io::StTensor>> state_st() const;
  // Moment bytes per chunk and array ([chunk][array]; arrays as in state_st's comment: fp32
  // {m, v}, int8 {m codes, v codes, m absmax, v absmax}).
  using StateArrays = std::vector<std::vector<std::vector<uint8_t>>>;
  // This share's part of every moment array: elements owned(k) of each (absmax: their blocks).
  StateArrays owned_state() const;
  // The entries of state_st() from the full arrays (every share's owned_state() concatenated
  // in shard order); throws if a size does not match.
  std::vector<std::pair<std::string, io::StTensor>> state_st(const StateArrays& full) const;
  // The elements of chunk k whose moments this optimizer keeps (all of them unsharded).
  ElementRange owned(size_t k) const { return owned_[k]; }
  // Copies values (matching dtype and numel) into the moments by name; every name of
  // state_tensors() must be present (device placement, unsharded). Call set_step_count() too; then
  // training continues bit-exactly.
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state);
  // Loads every entry of state_st() from a safetensors file (either placement; sharded: this
  // share's part of each entry, every entry checked all the same): a missing name,
  // another dtype or shape, or a non-finite fp32 value throws naming the file and the entry.
  void load_state(const io::SafetensorsReader& reader);
  // Bytes of moment storage in device memory (host placement: the staging buffers) and in
  // host memory.
  uint64_t device_state_bytes() const;
  uint64_t host_state_bytes() const;

  const AdamWConfig& config() const { return config_; }
  const ParameterPack& pack() const { return pack_; }

  // Where the step kernels end weight decay in chunk k: its decay_end rounded up to their vector
  // width on this device (the rounding moves only padding, which is zero in the parameters).
  int64_t kernel_decay_end(size_t k) const;

 private:
  // One checkpoint entry: elements [begin, begin + count) of moment array `array` of chunk k.
  struct Entry {
    std::string name;
    Shape shape;
    size_t chunk;
    int array;
    int64_t begin, count;
  };
  std::vector<Entry> entries() const;
  // Array a of chunk k's range kept here, in the full array's elements (absmax: blocks).
  std::pair<int64_t, int64_t> owned_array(size_t k, int a) const;
  // Elements [begin, begin + count) of the full array a of chunk k (within owned_array) as
  // device view (device placement).
  Tensor device_view(size_t k, int array, int64_t begin, int64_t count) const;
  void norm_into(const Tensor& out, float max_norm, float grad_scale);
  // The step kernel over elements [begin, begin + n) of chunk k, with the moment arrays given
  // as tensors whose element 0 is the range's first element (block begin / 256 for absmax).
  void launch_step(size_t k, int64_t begin, int64_t n, const std::vector<Tensor>& arrays,
                   const float* scalars, bool clip, float grad_scale);
  ParameterPack pack_;
  AdamWConfig config_;
  std::vector<ElementRange> owned_;  // per chunk: the elements this share keeps (all, unsharded)
  // Moment arrays per chunk (device placement), over owned_[k] only: fp32 {m, v} (owned) f32;
  // int8 {m codes, v codes} (owned) u8 and {m absmax, v absmax} (its blocks) f32.
  std::vector<std::vector<Tensor>> moments_;
  std::vector<std::vector<std::vector<uint8_t>>> host_moments_;  // host placement, same arrays
  std::vector<Tensor> staging_;  // host placement: one page of each array
  int64_t page_ = 0;             // host placement: elements per page
  Tensor maps_;                  // int8: (1022) f32: signed code, signed mid, unsigned code, mid
  struct NormSegment {  // one norm_split share of a chunk, and its partial sums' groups
    size_t chunk;
    ElementRange range;
    int share;
    int64_t base, groups;  // partial_[base, base + groups)
  };
  std::vector<NormSegment> norm_segments_;
  Tensor partial_;  // (sum of groups) f32 partial sums of squares
  std::function<void(const Tensor&)> partials_sum_;  // set_partials_sum (empty: local norm)
  Tensor stats_;    // (2) f32: [norm, clip coefficient]
  bool clipped_ = false;
  int64_t step_ = 0;
};

}  // namespace magellano::optim
