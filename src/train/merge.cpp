#include "magellano/train/merge.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "magellano/io/checkpoint_dir.hpp"
#include "magellano/io/hf_json.hpp"
#include "magellano/io/int4_safetensors.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/nf4_safetensors.hpp"
#include "magellano/io/safetensors.hpp"
#include "magellano/io/safetensors_device.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/train/adapter.hpp"
#include "magellano/train/checkpoint.hpp"

namespace magellano::train {
namespace fs = std::filesystem;

nlohmann::json MergeReport::to_json() const {
  nlohmann::json j{{"merged", merged},
                   {"copied", copied},
                   {"max_abs_delta", max_abs_delta},
                   {"mean_abs_delta", mean_abs_delta},
                   {"requantized", requantized},
                   {"seconds", seconds}};
  if (requantized) {
    j["requant_mean_abs_error"] = requant_mean_abs_error;
    j["requant_max_abs_error"] = requant_max_abs_error;
  }
  return j;
}

MergeReport merge_adapter(const fs::path& base_dir, const fs::path& adapter_dir, const fs::path& out_dir,
                          Context& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!io::SafetensorsSet::present(base_dir) || !fs::is_regular_file(base_dir / "config.json"))
    throw Error("merge-adapter: " + base_dir.string() + " is not a model checkpoint (it needs config.json "
                "and model.safetensors or a sharded model.safetensors.index.json; a LoRA training checkpoint "
                "holds only an adapter).");
  io::refuse_existing_output(out_dir, "merge-adapter");  // never overwrites (nor reads and writes the base)
  const LoRASection lora = read_adapter_config(adapter_dir);
  const float scaling = static_cast<float>(lora.alpha / static_cast<double>(lora.rank));
  const auto base = io::SafetensorsSet::open(base_dir);  // one file or shards; written back as one file
  const auto adapter = io::SafetensorsReader::open(adapter_dir / "adapter_model.safetensors");

  // Where each adapted weight lives in the base: under its own name, or for a Hugging Face hybrid
  // (Granite, Jamba) where its layout puts it, possibly rows of a packed tensor (train/hf_layout.hpp).
  const HfLocator locate = weights_locator(base_dir);
  struct Delta {
    std::string a_name, b_name;
    int64_t row_begin = 0;
  };
  std::map<std::string, std::vector<Delta>> deltas;  // base tensor -> the adapters on its rows
  const std::string suffix = ".lora_A.weight";
  for (const auto& a_name : adapter.names()) {
    if (a_name.size() <= suffix.size() || a_name.compare(a_name.size() - suffix.size(), suffix.size(), suffix) != 0 ||
        a_name.rfind(kPeftPrefix, 0) != 0)
      continue;
    const std::string stem = a_name.substr(std::string(kPeftPrefix).size(),
                                           a_name.size() - suffix.size() - std::string(kPeftPrefix).size());
    const std::string b_name = kPeftPrefix + stem + ".lora_B.weight";
    if (!adapter.contains(b_name)) throw Error("merge-adapter: the adapter has " + a_name + " but no " + b_name + ".");
    HfSlice at{stem + ".weight"};
    if (locate)
      for (const HfSlice& c : locate(stem + ".weight"))
        if (base.contains(c.name)) {
          at = c;
          break;
        }
    if (!io::holds_weight(base, at.name)) continue;  // counted below as matching no weight
    deltas[at.name].push_back({a_name, b_name, at.row_begin});
  }

  MergeReport rep;
  std::vector<std::pair<std::string, io::StTensor>> out;
  int64_t used = 0, delta_n = 0;
  double delta_sum = 0;
  std::set<std::string> nf4_names, skip;  // NF4 weights, and the companion tensors of merged ones
  for (const auto& n : io::nf4_weight_names(base)) nf4_names.insert(n);
  // int4 weights ("X.weight" held as X.weight_packed / _scale / _shape) with an adapter: merged
  // when their packed words come by, the other two parts written with them.
  std::map<std::string, std::string> int4_of_packed;
  for (const auto& [name, list] : deltas)
    if (io::is_int4_weight(base, name)) {
      int4_of_packed[io::int4_packed_name(name)] = name;
      skip.insert(io::int4_scale_name(name));
      skip.insert(io::int4_shape_name(name));
    }
  ops::NF4Error requant;
  double int4_abs_sum = 0;
  int64_t int4_n = 0;
  for (const auto& raw : base.names()) {
    if (skip.count(raw)) continue;
    const auto packed_of = int4_of_packed.find(raw);
    const bool int4 = packed_of != int4_of_packed.end();
    const std::string name = int4 ? packed_of->second : raw;
    const auto found = deltas.find(name);
    if (found == deltas.end()) {
      out.emplace_back(name, base.read(name));
      ++rep.copied;
      continue;
    }
    const bool nf4 = nf4_names.count(name) > 0;
    ops::NF4Weight q;
    quant::Int4Weight q4;
    std::vector<int64_t> ws;
    if (int4) {
      q4 = io::load_int4(base, name);
      ws = {q4.rows, q4.cols};
    } else if (nf4) {
      q = io::load_nf4(ctx, base, name, MemCategory::scratch);
      ws = q.shape.dims();
      for (const char* part : {".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"}) skip.insert(name + part);
      skip.insert(name + io::kNF4QuantStateSuffix);
    } else {
      ws = base.shape(name);
    }
    // The weight viewed as (rows, cols): a packed tensor's rows are its experts' rows one after another.
    const int64_t cols = ws.empty() ? 1 : ws.back(), rows = io::st_numel(ws) / std::max<int64_t>(1, cols);
    std::vector<float> wv = int4  ? quant::dequantize_int4(q4)
                            : nf4 ? ops::dequantize_nf4(q, MemCategory::scratch).to_host()
                                  : base.read_f32(name);
    for (const Delta& dl : found->second) {
      const auto as = adapter.shape(dl.a_name), bs = adapter.shape(dl.b_name);
      if (ws.size() < 2 || as.size() != 2 || bs.size() != 2 || as[1] != cols || as[0] != bs[1] ||
          dl.row_begin + bs[0] > rows)
        throw Error("merge-adapter: " + name + " " + io::st_shape_str(ws) + " does not fit its adapter (A " +
                    io::st_shape_str(as) + ", B " + io::st_shape_str(bs) + ").");
      const Tensor a = Tensor::from_host(ctx, Shape{as[0], as[1]}, adapter.read_f32(dl.a_name), DType::f32, MemCategory::scratch);
      const Tensor b = Tensor::from_host(ctx, Shape{bs[0], bs[1]}, adapter.read_f32(dl.b_name), DType::f32, MemCategory::scratch);
      Tensor d = Tensor::empty(ctx, Shape{bs[0], as[1]}, DType::f32, MemCategory::scratch);
      ops::gemm(b, false, a, false, d, scaling, 0.0f);  // (out, r) x (r, in)
      const std::vector<float> dv = d.to_host();
      float* w = wv.data() + dl.row_begin * cols;
      for (size_t i = 0; i < dv.size(); ++i) {
        w[i] += dv[i];
        rep.max_abs_delta = std::max(rep.max_abs_delta, std::fabs(double(dv[i])));
        delta_sum += std::fabs(double(dv[i]));
      }
      delta_n += static_cast<int64_t>(dv.size());
      ++rep.merged;
      used += 2;
    }
    if (int4) {  // re-quantize W + ΔW (fp32) in the file's group size and scale type
      const quant::Int4Weight q2 = quant::quantize_int4(wv.data(), q4.rows, q4.cols, q4.group_size,
                                                        quant::FloatType::f32, q4.scale_type);
      const std::vector<float> back = quant::dequantize_int4(q2);
      for (size_t i = 0; i < wv.size(); ++i) {
        const double e = std::fabs(double(back[i]) - wv[i]);
        rep.requant_max_abs_error = std::max(rep.requant_max_abs_error, e);
        int4_abs_sum += e;
      }
      int4_n += static_cast<int64_t>(wv.size());
      for (auto& t : io::int4_to_st(name, q2)) out.push_back(std::move(t));
      rep.requantized = true;
      continue;
    }
    if (nf4) {  // re-quantize W + ΔW and measure what that rounding costs
      const Tensor merged = Tensor::from_host(ctx, Shape{ws[0], ws[1]}, wv, DType::f32, MemCategory::scratch);
      const ops::NF4Weight q2 = ops::quantize_nf4(merged, MemCategory::scratch);
      requant += ops::nf4_error(merged, q2);
      const std::vector<float> back = ops::dequantize_nf4(q2, MemCategory::scratch).to_host();
      for (size_t i = 0; i < wv.size(); ++i)
        rep.requant_max_abs_error = std::max(rep.requant_max_abs_error, std::fabs(double(back[i]) - wv[i]));
      for (auto& t : io::nf4_to_st(name, q2)) out.push_back(std::move(t));
      rep.requantized = true;
      continue;
    }
    io::StTensor st;
    st.dtype = io::StDType::F32;
    st.shape = ws;
    st.bytes.resize(wv.size() * 4);
    std::memcpy(st.bytes.data(), wv.data(), st.bytes.size());
    out.emplace_back(name, std::move(st));
  }
  rep.requant_mean_abs_error = (requant.abs_sum + int4_abs_sum) / double(std::max<int64_t>(1, requant.n + int4_n));
  if (used != static_cast<int64_t>(adapter.names().size()))
    throw Error("merge-adapter: " + std::to_string(adapter.names().size() - used) + " adapter tensors match no "
                "weight of " + base_dir.string() + ": the adapter belongs to another model.");
  rep.mean_abs_delta = delta_n ? delta_sum / double(delta_n) : 0.0;
  // Written as a checkpoint folder: complete under its name, or not there at all.
  const fs::path target = out_dir.lexically_normal();
  const fs::path folder = target.has_filename() ? target : target.parent_path();
  io::write_checkpoint_dir(folder.parent_path().empty() ? "." : folder.parent_path(), folder.filename().string(),
                           [&](const fs::path& dir) {
                             io::write_safetensors(dir / "model.safetensors", out, base.metadata());
                             io::write_json_atomically(dir / "config.json",
                                                       io::read_hf_json(base_dir / "config.json", "base config"));
                           });
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace magellano::train
