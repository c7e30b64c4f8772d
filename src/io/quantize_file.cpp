#include "magellano/io/quantize_file.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstring>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/hf_json.hpp"
#include "magellano/io/int4_safetensors.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/nf4_safetensors.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/io/safetensors_stream.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::io {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_float(StDType t) {
  return t == StDType::F32 || t == StDType::F16 || t == StDType::BF16;
}

const char* torch_dtype_name(StDType t) {
  switch (t) {
    case StDType::F16: return "float16";
    case StDType::BF16: return "bfloat16";
    default: return "float32";
  }
}

void check_options(const QuantizeOptions& o) {
  if (o.format == QuantFormat::int4 && o.group_size <= 0)
    throw Error("quantize: the int4 group size must be a positive whole number of input columns (128 is "
                "llm-compressor's and vLLM's usual one), not " + std::to_string(o.group_size) + ".");
}

// Rows of a weight per block of the int4 quantizer: ~256 KiB of f32, so production3B's largest
// weights split into some 64 blocks for the threads to share.
constexpr int64_t kInt4BlockValues = int64_t{1} << 16;

// Quantizes one weight on the host to int4 and adds its error to `e`: blocks of rows on up to
// `threads` threads (this one among them), each block's error summed on its own and the blocks'
// sums added in block order, so the file and the figures do not depend on the number of threads.
// Throws for a non-finite value.
quant::Int4Weight quantize_int4_weight(const std::string& name, const std::string& file, const float* w,
                                       const std::vector<int64_t>& shape, StDType dt, int64_t group_size,
                                       unsigned threads, ops::NF4Error& e) {
  const int64_t rows = shape[0], cols = shape[1];
  quant::Int4Weight q = quant::int4_layout(rows, cols, group_size, float_type_of(int4_scale_dtype(dt)));
  const int64_t block = std::max<int64_t>(1, kInt4BlockValues / cols), blocks = (rows + block - 1) / block;
  std::vector<std::optional<ops::NF4Error>> sums(static_cast<size_t>(blocks));
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto work = [&] {
    try {
      for (int64_t b; (b = next++) < blocks;)
        sums[b] = quant::quantize_int4_rows(w, float_type_of(dt), b * block, std::min(rows, (b + 1) * block), q);
    } catch (...) {
      const std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = blocks;
    }
  };
  {
    std::vector<std::jthread> helpers;
    for (int64_t t = 1; t < std::min<int64_t>(threads, blocks); ++t) helpers.emplace_back(work);
    work();
  }  // joined
  if (failure) std::rethrow_exception(failure);
  for (const auto& s : sums) {
    if (!s)
      throw Error("quantize: tensor '" + name + "' in " + file + " holds Inf or NaN values; fix the checkpoint first.");
    e += *s;
  }
  return q;
}

// The streaming core: every tensor of `reader` (one file or a checkpoint's shards) to one file
// `out`, quantizing the linear weights.
QuantizeReport quantize_stream(Context& ctx, const SafetensorsSet& reader,
                               const fs::path& out, const QuantizeProgress& progress, const QuantizeOptions& opts) {
  const auto start = Clock::now();
  const bool int4 = opts.format == QuantFormat::int4;
  const unsigned threads = opts.threads > 0 ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
  QuantizeReport rep;
  std::vector<StEntry> entries;
  const std::vector<std::string> names = reader.names();
  std::vector<bool> quantize(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const StDType dt = reader.dtype(name);
    const std::vector<int64_t> shape = reader.shape(name);
    quantize[i] = should_quantize(name, dt, shape);
    if (quantize[i] && int4 && shape[1] % opts.group_size != 0) {  // compressed-tensors cannot store it
      quantize[i] = false;
      rep.group_misfits.push_back(name);
    }
    if (quantize[i]) {
      for (StEntry& e : int4 ? int4_entries(name, shape, opts.group_size, int4_scale_dtype(dt))
                             : nf4_entries(name, shape, torch_dtype_name(dt)))
        entries.push_back(e);
    } else {
      entries.push_back({name, dt, shape});
      if (shape.size() == 2 && ends_with(name, ".weight") && is_float(dt))
        rep.skipped_linear.push_back(name);
    }
  }
  // NF4: each quantized tensor goes to the device whole, as f32: refuse one that cannot, before
  // anything is written.
  for (size_t i = 0; i < names.size() && !int4; ++i) {
    const uint64_t bytes = static_cast<uint64_t>(st_numel(reader.shape(names[i]))) * 4;
    if (quantize[i] && bytes > ctx.device().max_alloc_bytes)
      throw Error("quantize: tensor '" + names[i] + "' of " + reader.reader(names[i]).path().string() + " takes " + format_bytes(bytes) +
                  " as f32, more than the largest allocation " + ctx.device().name + " allows (" +
                  format_bytes(ctx.device().max_alloc_bytes) + "). Use a device with larger allocations" +
                  (ctx.device().is_pocl() ? " (on PoCL, raise POCL_MEMORY_LIMIT=<GB>)." : "."));
  }
  SafetensorsStreamWriter writer(out, entries, reader.metadata());
  // The next tensor is read on another thread while this one is quantized and written, so at
  // most two tensors are in host memory at once: the tensors to quantize in two buffers of the
  // largest one's size, used in turn (no fresh pages per tensor).
  int64_t largest = 0;
  for (size_t i = 0; i < names.size(); ++i)
    if (quantize[i]) largest = std::max(largest, st_numel(reader.shape(names[i])));
  std::unique_ptr<float[]> buffers[2];
  for (auto& b : buffers)
    if (largest > 0) b.reset(new float[static_cast<size_t>(largest)]);
  struct Loaded {
    StTensor raw;                  // copied tensors
    const float* values = nullptr;  // tensors to quantize, as f32
  };
  const auto load = [&](size_t i) {
    Loaded l;
    if (quantize[i]) {
      reader.read_f32_into(names[i], buffers[i % 2].get());
      l.values = buffers[i % 2].get();
    } else {
      l.raw = reader.read(names[i]);
    }
    return l;
  };
  std::future<Loaded> next;
  if (!names.empty()) next = std::async(std::launch::async, load, size_t{0});
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    auto t = Clock::now();
    Loaded cur = next.get();  // the time spent waiting here is reading that did not overlap
    if (i + 1 < names.size()) next = std::async(std::launch::async, load, i + 1);
    rep.read_seconds += since(t);
    t = Clock::now();
    if (!quantize[i]) {
      writer.write(name, cur.raw);
      rep.write_seconds += since(t);
      ++rep.tensors_copied;
    } else {
      const std::vector<int64_t> shape = reader.shape(name);
      const std::string file = reader.reader(name).path().string();
      std::vector<std::pair<std::string, StTensor>> parts;
      if (int4) {
        parts = int4_to_st(name, quantize_int4_weight(name, file, cur.values, shape, reader.dtype(name),
                                                      opts.group_size, threads, rep.error));
      } else {
        Tensor w = Tensor::empty(ctx, Shape(shape), DType::f32, MemCategory::scratch);
        w.copy_from_host(cur.values, static_cast<uint64_t>(st_numel(shape)) * 4);
        const ops::NF4Weight q = ops::quantize_nf4(w, MemCategory::scratch);
        const ops::NF4Error e = ops::nf4_error(w, q);  // NaN or Inf anywhere makes these sums non-finite
        if (!std::isfinite(q.offset) || !std::isfinite(e.abs_sum) || !std::isfinite(e.mag_sum))
          throw Error("quantize: tensor '" + name + "' in " + file + " holds Inf or NaN values; fix the checkpoint first.");
        rep.error += e;
        parts = nf4_to_st(name, q, torch_dtype_name(reader.dtype(name)));
      }
      rep.quantize_seconds += since(t);
      t = Clock::now();
      for (const auto& [part, st] : parts) {
        writer.write(part, st);
        rep.quantized_bytes += st.bytes.size();
      }
      rep.write_seconds += since(t);
      ++rep.tensors_quantized;
      rep.params_quantized += st_numel(shape);
    }
    if (progress) progress(name, quantize[i]);
  }
  const auto t = Clock::now();
  writer.commit();
  rep.write_seconds += since(t);
  rep.bytes_in = reader.total_bytes();
  rep.bytes_out = fs::file_size(out);
  rep.seconds = since(start);
  return rep;
}

}  // namespace

const char* quant_format_name(QuantFormat f) { return f == QuantFormat::int4 ? "int4" : "nf4"; }

bool should_quantize(const std::string& name, StDType dtype, const std::vector<int64_t>& shape) {
  if (shape.size() != 2 || !is_float(dtype) || !ends_with(name, ".weight")) return false;
  if (shape[0] <= 0 || shape[1] <= 0) return false;
  const std::string n = lower(name);
  for (const char* skip : {"embed", "norm", "lm_head"})
    if (n.find(skip) != std::string::npos) return false;
  return true;
}

QuantizeReport quantize_safetensors_file(Context& ctx, const fs::path& in, const fs::path& out,
                                         const QuantizeProgress& progress, const QuantizeOptions& options) {
  check_options(options);
  if (fs::is_directory(in))
    throw Error("quantize: " + in.string() + " is a folder; give its model.safetensors, or use "
                "quantize_checkpoint_dir for a checkpoint folder.");
  const SafetensorsSet reader = SafetensorsSet::of(SafetensorsReader::open(in));
  refuse_existing_output(out, "quantize");
  return quantize_stream(ctx, reader, out, progress, options);
}

nlohmann::json nf4_quantization_config(const std::vector<std::string>& skipped_modules) {
  // BitsAndBytesConfig.to_dict() for load_in_4bit, nf4, double quantization.
  nlohmann::json q = {{"quant_method", "bitsandbytes"},
                      {"_load_in_4bit", true},
                      {"_load_in_8bit", false},
                      {"load_in_4bit", true},
                      {"load_in_8bit", false},
                      {"bnb_4bit_quant_type", "nf4"},
                      {"bnb_4bit_use_double_quant", true},
                      {"bnb_4bit_compute_dtype", "float32"},
                      {"bnb_4bit_quant_storage", "uint8"},
                      {"llm_int8_enable_fp32_cpu_offload", false},
                      {"llm_int8_has_fp16_weight", false},
                      {"llm_int8_threshold", 6.0}};
  q["llm_int8_skip_modules"] = skipped_modules.empty() ? nlohmann::json(nullptr)
                                                       : nlohmann::json(skipped_modules);
  return q;
}

QuantizeReport quantize_checkpoint_dir(Context& ctx, const fs::path& in, const fs::path& out,
                                       const QuantizeProgress& progress, const QuantizeOptions& options) {
  check_options(options);
  if (!fs::is_directory(in))
    throw Error("quantize: " + in.string() + " is not a folder.");
  if (!SafetensorsSet::present(in))
    throw Error("quantize: " + in.string() + " has no model.safetensors (nor a sharded model.safetensors.index.json). "
                "Give a checkpoint folder (model.safetensors + config.json) or a .safetensors file.");
  const SafetensorsSet reader = SafetensorsSet::open(in);  // a sharded input becomes one NF4 file
  refuse_existing_output(out, "quantize");
  fs::path parent = out.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent))
    throw Error("quantize: the folder " + parent.string() + " for the output does not exist.");
  CheckpointDir dir(parent, out.filename().string());
  QuantizeReport rep = quantize_stream(ctx, reader, dir.file("model.safetensors"), progress, options);

  std::vector<std::string> skipped;
  for (const std::string& w : rep.skipped_linear)
    skipped.push_back(w.substr(0, w.size() - std::string(".weight").size()));
  if (fs::exists(in / "config.json")) {
    // A Hugging Face config may hold Python's Infinity (Mamba2's time_step_limit): it is
    // written back as {"__float__": "Infinity"} (io/hf_json.hpp).
    nlohmann::json cfg = read_hf_json(in / "config.json", "checkpoint config");
    if (!cfg.is_object())
      throw Error("quantize: " + (in / "config.json").string() + " is not a JSON object.");
    if (options.format == QuantFormat::int4) {
      // A tied output head has no tensor of its own, but transformers' lm_head is still a Linear.
      if (std::find(skipped.begin(), skipped.end(), "lm_head") == skipped.end()) skipped.push_back("lm_head");
      cfg["quantization_config"] = int4_quantization_config(options.group_size, skipped);
    } else {
      cfg["quantization_config"] = nf4_quantization_config(skipped);
    }
    write_json_atomically(dir.file("config.json"), cfg);
  }
  // Tokenizer and generation files travel with the weights.
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "vocab.json", "merges.txt", "encoder.json", "vocab.bpe",
                        "generation_config.json", "added_tokens.json"})
    if (fs::is_regular_file(in / f)) fs::copy_file(in / f, dir.file(f));
  dir.commit();
  return rep;
}

}  // namespace magellano::io
