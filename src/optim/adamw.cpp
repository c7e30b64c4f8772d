#include "magellano/optim/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "magellano/io/safetensors_device.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/optim/dynamic_map.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::optim {
namespace {

constexpr int64_t kLocal = 256;      // LOCAL in cl/adamw.cl
constexpr int64_t kMaxGroups = 256;  // partial sums per chunk
const char* kStepOptions = "-cl-fp32-correctly-rounded-divide-sqrt";

// VEC of the step kernels: 16 on CPUs (measured on PoCL: ~3x one element per work-item), 4
// elsewhere (16-byte loads per work-item, the usual best for GPU bandwidth). Divides kAlign,
// so every chunk holds whole vectors.
int64_t step_vec(const Context& ctx) { return ctx.device().type == "cpu" ? 16 : 4; }
static_assert(ParameterPack::kAlign % 16 == 0, "chunks must hold whole vectors");

// Build options of cl/adamw.cl. -w on CPUs: clang warns (on stderr, at every build) that
// float16 arguments change the ABI without AVX-512; harmless here, everything is inlined.
BuildOptions program_options(const Context& ctx) {
  const int64_t vec = step_vec(ctx);
  BuildOptions options = BuildOptions().define("VEC", vec).flag(kStepOptions);
  if (vec == 16) options.flag("-w");
  return options;
}

// The random stream of chunk k at step t for stochastic rounding (splitmix64's finaliser of
// both, folded to 32 bits): a new one every step, the same one for the same step on resume.
uint32_t rounding_seed(int64_t t, size_t k) {
  uint64_t z = static_cast<uint64_t>(t) * 0x9E3779B97F4A7C15ULL + k;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<uint32_t>(z ^ (z >> 32));
}


// The moment arrays of one chunk: fp32 {m, v}; int8 {m codes, v codes, m absmax, v absmax}.
int array_count(StateFormat f) { return f == StateFormat::fp32 ? 2 : 4; }
bool is_absmax(StateFormat f, int a) { return f == StateFormat::int8 && a >= 2; }
DType array_dtype(StateFormat f, int a) {
  return f == StateFormat::int8 && a < 2 ? DType::u8 : DType::f32;
}
// Elements of array a for `numel` parameter elements.
int64_t array_numel(StateFormat f, int a, int64_t numel) {
  return is_absmax(f, a) ? quant_blocks(numel) : numel;
}
// Array a's range for parameter elements [begin, begin + n) (begin a multiple of kQuantBlock
// when absmax).
std::pair<int64_t, int64_t> array_range(StateFormat f, int a, int64_t begin, int64_t n) {
  if (!is_absmax(f, a)) return {begin, n};
  return {begin / kQuantBlock, quant_blocks(begin + n) - begin / kQuantBlock};
}
io::StDType st_dtype(DType t) { return t == DType::u8 ? io::StDType::U8 : io::StDType::F32; }
// Array a's range for the elements of r (empty for an empty r, wherever it lies).
std::pair<int64_t, int64_t> array_span(StateFormat f, int a, ElementRange r) {
  return r.size() > 0 ? array_range(f, a, r.begin, r.size()) : std::pair<int64_t, int64_t>{0, 0};
}

}  // namespace

AdamW::AdamW(Context& ctx, const std::vector<Parameter>& params, AdamWConfig config)
    : pack_(ctx, params, config.max_chunk_bytes),
      config_(config),
      owned_(shard_ranges(pack_, config.shard, config.shards)) {
  if (!(config.beta1 >= 0.0f && config.beta1 < 1.0f) || !(config.beta2 >= 0.0f && config.beta2 < 1.0f))
    throw Error("AdamW: betas must lie in [0, 1); got " + std::to_string(config.beta1) + ", " +
                std::to_string(config.beta2) + ".");
  if (!(config.eps >= 0.0f)) throw Error("AdamW: eps must be >= 0.");
  const StateFormat f = config.states;
  const int arrays = array_count(f);
  const bool host = config.offload == StatePlacement::host;
  if (host) {
    if (config.page_elements <= 0) throw Error("AdamW: page_elements must be positive.");
    int64_t largest = 0;
    for (const auto& r : owned_) largest = std::max(largest, r.size());
    page_ = std::min((config.page_elements + kQuantBlock - 1) / kQuantBlock * kQuantBlock,
                     (largest + kQuantBlock - 1) / kQuantBlock * kQuantBlock);
    for (int a = 0; a < arrays && page_ > 0; ++a)
      staging_.push_back(Tensor::zeros(ctx, Shape{array_numel(f, a, page_)}, array_dtype(f, a),
                                       MemCategory::optimizer));
  }
  if (f == StateFormat::int8) {
    std::vector<float> maps;
    for (bool is_signed : {true, false}) {
      const DynamicMap& m = dynamic_map(is_signed);
      maps.insert(maps.end(), m.code.begin(), m.code.end());
      maps.insert(maps.end(), m.mid.begin(), m.mid.end());
    }
    maps_ = Tensor::from_host(ctx, Shape{int64_t(maps.size())}, maps, DType::f32, MemCategory::optimizer);
  }
  int64_t groups_total = 0;
  for (size_t k = 0; k < pack_.chunks().size(); ++k) {
    // Zero codes with absmax 0 read back as 0 in either map: all formats start at m = v = 0.
    if (host) {
      host_moments_.emplace_back();
      for (int a = 0; a < arrays; ++a)
        host_moments_.back().emplace_back(array_span(f, a, owned_[k]).second * dtype_size(array_dtype(f, a)), 0);
    } else {
      moments_.emplace_back();
      for (int a = 0; a < arrays; ++a)  // (an empty share keeps one element: no zero-size buffers)
        moments_.back().push_back(Tensor::zeros(ctx, Shape{std::max<int64_t>(1, array_span(f, a, owned_[k]).second)},
                                                array_dtype(f, a), MemCategory::optimizer));
    }
  }
  if (config.norm_split < 1) throw Error("AdamW: norm_split must be at least 1.");
  for (int r = 0; r < config.norm_split; ++r) {
    const std::vector<ElementRange> share = shard_ranges(pack_, r, config.norm_split);
    for (size_t k = 0; k < share.size(); ++k) {
      if (share[k].size() == 0) continue;
      const int64_t g = std::clamp<int64_t>((share[k].size() + kLocal - 1) / kLocal, 1, kMaxGroups);
      norm_segments_.push_back({k, share[k], r, groups_total, g});
      groups_total += g;
    }
  }
  partial_ = Tensor::zeros(ctx, Shape{std::max<int64_t>(groups_total, 1)}, DType::f32,
                           MemCategory::optimizer);
  stats_ = Tensor::zeros(ctx, Shape{2}, DType::f32, MemCategory::optimizer);
}

void AdamW::norm_into(const Tensor& out, float max_norm, float grad_scale) {
  Context& ctx = pack_.ctx();
  const auto& chunks = pack_.chunks();
  for (const NormSegment& seg : norm_segments_) {
    Tensor part = partial_.narrow_rows(seg.base, seg.base + seg.groups);
    const PackChunk& c = chunks[seg.chunk];
    const int64_t n = seg.range.size();
    if (n % step_vec(ctx) != 0) throw Error("AdamW: a chunk's norm segment is not vector aligned.");
    // Sharded with a partials sum: this share's segments only (the others' gradients here are
    // not the summed ones; their partials are zeros).
    const bool counted = !partials_sum_ || seg.share == config_.shard;
    ops::Launch(ctx, "adamw", c.dtype() == DType::f16 ? "sumsq_partial_half" : "sumsq_partial", program_options(ctx))
        .arg(c.grads.narrow_rows(seg.range.begin, seg.range.end)).arg(part)
        .arg(n).arg(int64_t(0)).arg(counted ? n : int64_t(0)).run(seg.groups * kLocal, kLocal);
  }
  if (partials_sum_ && !norm_segments_.empty()) partials_sum_(partial_);
  const int64_t count = norm_segments_.empty() ? 0 : partial_.numel();
  ops::Launch(ctx, "adamw", "norm_final", program_options(ctx))
      .arg(partial_).arg(out).arg(count).arg(max_norm).arg(grad_scale).run(kLocal, kLocal);
}

Tensor AdamW::grad_norm(float grad_scale) {
  Tensor out = Tensor::empty(pack_.ctx(), Shape{1});
  norm_into(out, 0.0f, grad_scale);
  return out;
}

Tensor AdamW::last_grad_norm() const { return clipped_ ? stats_.narrow_rows(0, 1) : Tensor(); }

void AdamW::set_partials_sum(std::function<void(const Tensor& partials)> sum) {
  if (config_.shards <= 1 || config_.norm_split != config_.shards)
    throw Error("AdamW::set_partials_sum: only a sharded optimizer with norm_split = shards sums partial norms.");
  partials_sum_ = std::move(sum);
}

void AdamW::step(float lr, float max_grad_norm, float grad_scale) {
  const bool clip = max_grad_norm > 0.0f;
  if (clip) {
    norm_into(stats_, max_grad_norm, grad_scale);
    clipped_ = true;
  }
  ++step_;
  const double t = static_cast<double>(step_);
  const double b1 = config_.beta1, b2 = config_.beta2;
  const float decay = static_cast<float>(1.0 - double(lr) * double(config_.weight_decay));
  const float omb1 = static_cast<float>(1.0 - b1), omb2 = static_cast<float>(1.0 - b2);
  const float step_size = static_cast<float>(double(lr) / (1.0 - std::pow(b1, t)));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
  const float scalars[8] = {decay, config_.beta1, omb1, config_.beta2, omb2, step_size, bc2_sqrt,
                            config_.eps};
  const StateFormat f = config_.states;
  const auto& chunks = pack_.chunks();
  for (size_t k = 0; k < chunks.size(); ++k) {
    const ElementRange r = owned_[k];  // the whole chunk unless sharded
    if (r.size() == 0) continue;
    if (config_.offload == StatePlacement::device) {
      launch_step(k, r.begin, r.size(), moments_[k], scalars, clip, grad_scale);
      continue;
    }
    // Host placement: page by page through the staging buffers (blocking transfers). Host
    // arrays start at the range's first element (block).
    auto& host = host_moments_[k];
    for (int64_t begin = r.begin; begin < r.end; begin += page_) {
      const int64_t n = std::min(page_, r.end - begin);
      std::vector<Tensor> views;
      for (int a = 0; a < array_count(f); ++a) {
        const auto [full_b, count] = array_range(f, a, begin, n);
        const int64_t b = full_b - owned_array(k, a).first;
        const uint64_t esize = dtype_size(array_dtype(f, a));
        views.push_back(staging_[a].narrow_rows(0, count));
        views.back().copy_from_host(host[a].data() + b * esize, count * esize);
      }
      launch_step(k, begin, n, views, scalars, clip, grad_scale);
      for (int a = 0; a < array_count(f); ++a) {
        const auto [full_b, count] = array_range(f, a, begin, n);
        const int64_t b = full_b - owned_array(k, a).first;
        const uint64_t esize = dtype_size(array_dtype(f, a));
        if (array_dtype(f, a) == DType::u8) {
          const auto bytes = views[a].to_host_u8();
          std::memcpy(host[a].data() + b * esize, bytes.data(), count * esize);
        } else {
          const auto values = views[a].to_host();
          std::memcpy(host[a].data() + b * esize, values.data(), count * esize);
        }
      }
    }
  }
}

int64_t AdamW::kernel_decay_end(size_t k) const {
  const PackChunk& c = pack_.chunks()[k];
  const int64_t vec = step_vec(pack_.ctx());
  return std::min(c.numel, (c.decay_end + vec - 1) / vec * vec);
}

void AdamW::launch_step(size_t k, int64_t begin, int64_t n, const std::vector<Tensor>& arrays,
                        const float* sc, bool clip, float grad_scale) {
  Context& ctx = pack_.ctx();
  const PackChunk& c = pack_.chunks()[k];
  const int64_t vec = step_vec(ctx);
  const bool half = c.dtype() == DType::f16;
  const Tensor p = c.params.narrow_rows(begin, begin + n), g = c.grads.narrow_rows(begin, begin + n);
  const int64_t decay_end = std::clamp<int64_t>(kernel_decay_end(k) - begin, 0, n);  // within this range
  if (config_.states == StateFormat::fp32) {
    // Chunks are whole buffers of kAlign multiples (offset 0), moments likewise, and ranges
    // start at multiples of 256.
    for (const Tensor& t : {p, g, arrays[0], arrays[1]})
      if (t.offset() % vec != 0 || n % vec != 0) throw Error("AdamW: a chunk is not vector aligned.");
    ops::Launch launch(ctx, "adamw", half ? "adamw_step_half" : "adamw_step", program_options(ctx));
    launch.arg(p).arg(g).arg(arrays[0]).arg(arrays[1]).arg(stats_).arg(n).arg(decay_end);
    for (int i = 0; i < 8; ++i) launch.arg(sc[i]);
    launch.arg(clip).arg(grad_scale);
    if (half) launch.arg(config_.stochastic_rounding).arg(rounding_seed(step_, k)).arg(int64_t(begin));
    launch.run(n / vec);
    return;
  }
  using M = AdamWConfig::Int8Mapping;
  const bool rows = config_.int8_mapping == M::rows ||
                    (config_.int8_mapping == M::automatic && ctx.device().type == "cpu");
  const char* kernel = rows ? (half ? "adamw8_rows_half" : "adamw8_rows") : (half ? "adamw8_step_half" : "adamw8_step");
  ops::Launch launch(ctx, "adamw", kernel, program_options(ctx));
  launch.arg(p).arg(g).arg(arrays[0]).arg(arrays[1]).arg(arrays[2]).arg(arrays[3])
      .arg(maps_.narrow_rows(0, 256)).arg(maps_.narrow_rows(256, 511))
      .arg(maps_.narrow_rows(511, 767)).arg(maps_.narrow_rows(767, 1022))
      .arg(stats_).arg(n).arg(decay_end);
  for (int i = 0; i < 8; ++i) launch.arg(sc[i]);
  launch.arg(clip).arg(grad_scale);
  if (half) launch.arg(config_.stochastic_rounding).arg(rounding_seed(step_, k)).arg(int64_t(begin));
  if (rows)
    launch.run(quant_blocks(n));
  else
    launch.run(quant_blocks(n) * kQuantBlock, kQuantBlock);
}

double moment_bytes_per_element(StateFormat f) {
  return f == StateFormat::fp32 ? 8.0 : 2.0 + 8.0 / double(kQuantBlock);
}

std::vector<AdamW::Entry> AdamW::entries() const {
  std::vector<Entry> out;
  const StateFormat f = config_.states;
  if (f == StateFormat::fp32) {
    for (const auto& pp : pack_.params()) {
      const Shape& s = pp.param.tensor.shape();
      out.push_back({pp.param.name + ".exp_avg", s, size_t(pp.chunk), 0, pp.offset, s.numel()});
      out.push_back({pp.param.name + ".exp_avg_sq", s, size_t(pp.chunk), 1, pp.offset, s.numel()});
    }
    return out;
  }
  const char* names[4] = {".exp_avg.codes", ".exp_avg_sq.codes", ".exp_avg.absmax", ".exp_avg_sq.absmax"};
  for (size_t k = 0; k < pack_.chunks().size(); ++k)
    for (int a = 0; a < 4; ++a) {
      const int64_t n = array_numel(f, a, pack_.chunks()[k].numel);
      out.push_back({"adamw8." + std::to_string(k) + names[a], Shape{n}, k, a, 0, n});
    }
  return out;
}

Tensor AdamW::device_view(size_t k, int array, int64_t begin, int64_t count) const {
  const int64_t first = owned_array(k, array).first;
  return moments_[k][size_t(array)].narrow_rows(begin - first, begin - first + count);
}

std::pair<int64_t, int64_t> AdamW::owned_array(size_t k, int a) const { return array_span(config_.states, a, owned_[k]); }

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  if (config_.offload != StatePlacement::device || config_.shards > 1)
    throw Error("AdamW::state_tensors: the moments live in host memory or are sharded; use state_st().");
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Entry& e : entries()) out.emplace_back(e.name, device_view(e.chunk, e.array, e.begin, e.count).view(e.shape));
  return out;
}

std::vector<std::pair<std::string, io::StTensor>> AdamW::state_st() const {
  if (config_.shards > 1)
    throw Error("AdamW::state_st: this optimizer holds one share of the moments; gather every share's owned_state() "
                "and call state_st(full).");
  if (config_.offload == StatePlacement::host) return state_st(host_moments_);  // the whole arrays
  std::vector<std::pair<std::string, io::StTensor>> out;
  for (const Entry& e : entries())
    out.emplace_back(e.name, io::to_st(device_view(e.chunk, e.array, e.begin, e.count).view(e.shape)));
  return out;
}

AdamW::StateArrays AdamW::owned_state() const {
  const StateFormat f = config_.states;
  StateArrays out(pack_.chunks().size());
  for (size_t k = 0; k < out.size(); ++k)
    for (int a = 0; a < array_count(f); ++a) {
      if (config_.offload == StatePlacement::host) {
        out[k].push_back(host_moments_[k][size_t(a)]);
        continue;
      }
      const int64_t count = owned_array(k, a).second;
      std::vector<uint8_t>& bytes = out[k].emplace_back(size_t(count) * dtype_size(array_dtype(f, a)));
      if (count == 0) continue;
      const Tensor t = moments_[k][size_t(a)].narrow_rows(0, count);
      if (array_dtype(f, a) == DType::u8) {
        bytes = t.to_host_u8();
      } else {
        const auto values = t.to_host();
        std::memcpy(bytes.data(), values.data(), bytes.size());
      }
    }
  return out;
}

std::vector<std::pair<std::string, io::StTensor>> AdamW::state_st(const StateArrays& full) const {
  const StateFormat f = config_.states;
  bool sizes_match = full.size() == pack_.chunks().size();
  for (size_t k = 0; sizes_match && k < full.size(); ++k) {
    sizes_match = full[k].size() == size_t(array_count(f));
    for (int a = 0; sizes_match && a < array_count(f); ++a)
      sizes_match = full[k][size_t(a)].size() ==
                    size_t(array_numel(f, a, pack_.chunks()[k].numel)) * dtype_size(array_dtype(f, a));
  }
  if (!sizes_match) throw Error("AdamW::state_st: the gathered moment arrays do not match this optimizer's pack.");
  std::vector<std::pair<std::string, io::StTensor>> out;
  for (const Entry& e : entries()) {
    const DType t = array_dtype(f, e.array);
    const uint64_t esize = dtype_size(t);
    const auto& bytes = full[e.chunk][size_t(e.array)];
    io::StTensor st;
    st.dtype = st_dtype(t);
    st.shape = e.shape.dims();
    st.bytes.assign(bytes.begin() + e.begin * esize, bytes.begin() + (e.begin + e.count) * esize);
    out.emplace_back(e.name, std::move(st));
  }
  return out;
}

void AdamW::load_state(const io::SafetensorsReader& reader) {
  const std::string file = reader.path().string();
  std::vector<uint8_t> entry;
  for (const Entry& e : entries()) {
    if (!reader.contains(e.name))
      throw Error(file + " has no '" + e.name + "' (written by another optimizer_states setting or model?).");
    if (config_.offload == StatePlacement::device && config_.shards == 1) {
      io::load_into(reader, e.name, device_view(e.chunk, e.array, e.begin, e.count).view(e.shape));
      continue;
    }
    // Host placement or a share: the whole entry is read and checked, this share's part kept.
    const DType t = array_dtype(config_.states, e.array);
    if (reader.dtype(e.name) != st_dtype(t) || reader.shape(e.name) != e.shape.dims())
      throw Error(file + ": '" + e.name + "' is " + io::st_shape_str(reader.shape(e.name)) +
                  " of another dtype or shape; expected " + to_string(t) + " " + e.shape.str() + ".");
    const uint64_t esize = dtype_size(t);
    entry.resize(size_t(e.count) * esize);
    reader.read_into(e.name, entry.data(), entry.size());
    if (t == DType::f32) {
      std::vector<float> values(size_t(e.count));
      std::memcpy(values.data(), entry.data(), entry.size());
      io::require_finite(values, file + " '" + e.name + "'");
    }
    const auto [first, count] = owned_array(e.chunk, e.array);
    const int64_t lo = std::max(e.begin, first), hi = std::min(e.begin + e.count, first + count);
    if (lo >= hi) continue;
    const uint8_t* src = entry.data() + (lo - e.begin) * esize;
    if (config_.offload == StatePlacement::device)
      device_view(e.chunk, e.array, lo, hi - lo).copy_from_host(src, uint64_t(hi - lo) * esize);
    else
      std::memcpy(host_moments_[e.chunk][size_t(e.array)].data() + (lo - first) * esize, src, uint64_t(hi - lo) * esize);
  }
}

uint64_t AdamW::device_state_bytes() const {
  uint64_t total = maps_.defined() ? maps_.nbytes() : 0;
  for (const auto& arrays : moments_)
    for (const Tensor& t : arrays) total += t.nbytes();
  for (const Tensor& t : staging_) total += t.nbytes();
  return total;
}

uint64_t AdamW::host_state_bytes() const {
  uint64_t total = 0;
  for (const auto& arrays : host_moments_)
    for (const auto& a : arrays) total += a.size();
  return total;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  for (const auto& [name, dst] : state_tensors()) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw Error("AdamW::load_state: the optimizer state has no tensor '" + name + "'.");
    const Tensor& src = it->second;
    if (src.dtype() != dst.dtype() || src.numel() != dst.numel())
      throw Error("AdamW::load_state: '" + name + "' is " + to_string(src.dtype()) + " " +
                  src.shape().str() + "; expected " + to_string(dst.dtype()) + " " + dst.shape().str() + ".");
    ops::copy_into(src, dst);
  }
}

}  // namespace magellano::optim
