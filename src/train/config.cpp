// The config schema: one table of fields (key path, type, range, accessors) drives parsing,
// validation, --set and to_json, so they cannot disagree. configs/README.md documents it.
#include "magellano/train/config.hpp"

#include "magellano/ops/matrix_engine.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "magellano/ops/matrix_engine.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"
#include "magellano/train/model_size.hpp"

namespace magellano::train {
namespace {

using nlohmann::json;

enum class Kind { integer, number, boolean, string, opt_string, layers, choice, choice_list, checkpointing, limit };

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Field {
  std::string path;
  Kind kind;
  double lo = -kInf, hi = kInf;  // numeric range
  bool hi_open = false;          // hi excluded (fractions: [0, 1))
  bool lo_open = false;          // lo excluded (> 0)
  double cap = kInf;             // the largest size Magellano accepts (see schema())
  std::vector<std::string> choices;
  std::function<json(const Config&)> get;
  std::function<void(Config&, const json&)> set;
};

#define MG_ACCESS(member, T)                                        \
  [](const Config& c) { return json(c.member); },                   \
      [](Config& c, const json& v) { c.member = v.get<T>(); }

// A choice field: an enum member, its allowed values, and their names from config_name().
#define MG_CHOICE(member, values)                                                        \
  [](const Config& c) { return json(config_name(c.member)); },                           \
      [](Config& c, const json& v) { c.member = parse_choice(values, v.get<std::string>()); }, \
      choice_names(values)

#define MG_OPT(member)                                                                  \
  [](const Config& c) { return c.member ? json(*c.member) : json(nullptr); },           \
      [](Config& c, const json& v) {                                                    \
        c.member = v.is_null() ? std::nullopt : std::optional<std::string>(v.get<std::string>()); \
      }

constexpr DType kStorages[] = {DType::f32, DType::f16};
constexpr nn::WeightStorage kBaseStorages[] = {nn::WeightStorage::f32, nn::WeightStorage::f16,
                                               nn::WeightStorage::nf4, nn::WeightStorage::int4};
constexpr ComputeDType kComputeDTypes[] = {ComputeDType::fp32, ComputeDType::tf32, ComputeDType::bf16};
constexpr Fp16Rounding kRoundings[] = {Fp16Rounding::stochastic, Fp16Rounding::nearest};
constexpr optim::StateFormat kStateFormats[] = {optim::StateFormat::fp32, optim::StateFormat::int8};
constexpr optim::StatePlacement kPlacements[] = {optim::StatePlacement::device, optim::StatePlacement::host};
constexpr ops::ExpertActivation kActivations[] = {ops::ExpertActivation::swiglu,
                                                  ops::ExpertActivation::gelu};
constexpr data::Objective kObjectives[] = {data::Objective::causal, data::Objective::prefix_lm,
                                           data::Objective::blank_infilling};
constexpr data::InfillMode kInfillModes[] = {data::InfillMode::spans, data::InfillMode::document,
                                             data::InfillMode::single};
constexpr data::InfillPositions kInfillPositions[] = {data::InfillPositions::sequential,
                                                     data::InfillPositions::glm2d};
constexpr nn::MoERouter kRouters[] = {nn::MoERouter::softmax_topk, nn::MoERouter::topk_softmax};

template <typename E, size_t K>
std::vector<std::string> choice_names(const E (&values)[K]) {
  std::vector<std::string> out;
  for (E v : values) out.push_back(config_name(v));
  return out;
}

// check_type has already matched the name against choice_names(values).
template <typename E, size_t K>
E parse_choice(const E (&values)[K], const std::string& name) {
  for (E v : values)
    if (name == config_name(v)) return v;
  throw Error("config: unknown choice \"" + name + "\".");
}

// hi: the key's own bound, reported as a range ("in [2, 2147483647]"); cap: the largest size
// Magellano accepts (the key has no bound of its own), reported as "<= cap (the largest ...)".
Field integer(std::string path, double lo, std::function<json(const Config&)> g,
              std::function<void(Config&, const json&)> s, double hi = kInf, double cap = kInf) {
  return {std::move(path), Kind::integer, lo, hi, false, false, cap, {}, std::move(g), std::move(s)};
}
// Numbers are used as floats on the device, so they are capped at the largest float.
Field number(std::string path, double lo, bool lo_open, double hi, bool hi_open,
             std::function<json(const Config&)> g, std::function<void(Config&, const json&)> s) {
  return {std::move(path), Kind::number, lo, hi, hi_open, lo_open, std::numeric_limits<float>::max(), {},
          std::move(g), std::move(s)};
}
Field plain(std::string path, Kind kind, std::function<json(const Config&)> g,
            std::function<void(Config&, const json&)> s, std::vector<std::string> choices = {}) {
  return {std::move(path), kind, -kInf, kInf, false, false, kInf, std::move(choices), std::move(g), std::move(s)};
}

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = [] {
    std::vector<Field> f;
    // model
    // Integer sizes have maxima (configs/README.md): each fits an int, the product of any two
    // fits int64, and resolve() refuses a model whose totals would not (model_size.cpp counts
    // with overflow checks), so no size wraps or is truncated after validation.
    f.push_back(integer("model.vocab_size", 2, MG_ACCESS(model.vocab_size, int64_t), 2147483647.0));
    f.push_back(integer("model.dim", 1, MG_ACCESS(model.dim, int64_t), kInf, 65536));
    f.push_back(plain(
        "model.layers", Kind::layers, [](const Config& c) { return json(c.model.layers); },
        [](Config& c, const json& v) {
          c.model.layers = v.is_string() ? v.get<std::string>()
                                         : layer_string(parse_layer_list(v, "'model.layers'"));
        }));
    f.push_back(integer("model.d_state", 1, MG_ACCESS(model.d_state, int64_t), kInf, 1024));
    f.push_back(integer("model.d_conv", 1, MG_ACCESS(model.d_conv, int64_t), kInf, 1024));
    f.push_back(integer("model.expand", 1, MG_ACCESS(model.expand, int64_t), kInf, 64));
    f.push_back(integer("model.dt_rank", 0, MG_ACCESS(model.dt_rank, int64_t), kInf, 65536));
    f.push_back(plain("model.mamba_inner_norms", Kind::boolean, MG_ACCESS(model.mamba_inner_norms, bool)));
    f.push_back(plain("model.bidirectional_prefix", Kind::boolean, MG_ACCESS(model.bidirectional_prefix, bool)));
    f.push_back(plain("model.infill_positions", Kind::choice, MG_CHOICE(model.infill_positions, kInfillPositions)));
    f.push_back(plain("model.mamba_proj_bias", Kind::boolean, MG_ACCESS(model.mamba_proj_bias, bool)));
    f.push_back(plain("model.mamba_conv_bias", Kind::boolean, MG_ACCESS(model.mamba_conv_bias, bool)));
    f.push_back(plain("model.tie_embeddings", Kind::boolean, MG_ACCESS(model.tie_embeddings, bool)));
    f.push_back(number("model.norm_eps", 0, true, 1, true, MG_ACCESS(model.norm_eps, double)));
    f.push_back(integer("model.scan_chunk", 1, MG_ACCESS(model.scan_chunk, int64_t), kInf, 16777216));
    f.push_back(integer("model.mamba2.head_dim", 1, MG_ACCESS(model.mamba2.head_dim, int64_t), kInf, 65536));
    f.push_back(integer("model.mamba2.n_groups", 1, MG_ACCESS(model.mamba2.n_groups, int64_t), kInf, 65536));
    f.push_back(integer("model.mamba2.d_state", 1, MG_ACCESS(model.mamba2.d_state, int64_t), kInf, 1024));
    f.push_back(integer("model.mamba2.d_conv", 1, MG_ACCESS(model.mamba2.d_conv, int64_t), kInf, 1024));
    f.push_back(integer("model.mamba2.expand", 1, MG_ACCESS(model.mamba2.expand, int64_t), kInf, 64));
    f.push_back(integer("model.mamba2.chunk_size", 0, MG_ACCESS(model.mamba2.chunk_size, int64_t), 4096.0));
    f.push_back(plain(  // [lo, hi]; hi = inf is written null
        "model.mamba2.time_step_limit", Kind::limit,
        [](const Config& c) {
          const double hi = c.model.mamba2.dt_hi;
          return json::array({c.model.mamba2.dt_lo, std::isinf(hi) ? json(nullptr) : json(hi)});
        },
        [](Config& c, const json& v) {
          c.model.mamba2.dt_lo = v[0].get<double>();
          c.model.mamba2.dt_hi = v[1].is_number() ? v[1].get<double>() : kInf;
        }));
    f.push_back(number("model.mamba2.time_step_min", 0, true, kInf, false, MG_ACCESS(model.mamba2.time_step_min, double)));
    f.push_back(number("model.mamba2.time_step_max", 0, true, kInf, false, MG_ACCESS(model.mamba2.time_step_max, double)));
    f.push_back(number("model.mamba2.time_step_floor", 0, false, kInf, false,
                       MG_ACCESS(model.mamba2.time_step_floor, double)));
    f.push_back(plain("model.mamba2.bias", Kind::boolean, MG_ACCESS(model.mamba2.bias, bool)));
    f.push_back(plain("model.mamba2.conv_bias", Kind::boolean, MG_ACCESS(model.mamba2.conv_bias, bool)));
    f.push_back(integer("model.attention.heads", 1, MG_ACCESS(model.attention.heads, int64_t), kInf, 65536));
    f.push_back(integer("model.attention.kv_heads", 0, MG_ACCESS(model.attention.kv_heads, int64_t), kInf, 65536));
    f.push_back(integer("model.attention.head_dim", 0, MG_ACCESS(model.attention.head_dim, int64_t), kInf, 65536));
    f.push_back(number("model.attention.rope_theta", 0, false, 1e12, false, MG_ACCESS(model.attention.rope_theta, double)));
    f.push_back(number("model.attention.scale", 0, false, 1e6, false, MG_ACCESS(model.attention.scale, double)));
    f.push_back(number("model.embedding_multiplier", 0, true, 1e6, false, MG_ACCESS(model.embedding_multiplier, double)));
    f.push_back(number("model.residual_multiplier", 0, true, 1e6, false, MG_ACCESS(model.residual_multiplier, double)));
    f.push_back(number("model.logits_scaling", 0, true, 1e6, false, MG_ACCESS(model.logits_scaling, double)));
    f.push_back(integer("model.moe.experts", 1, MG_ACCESS(model.moe.experts, int64_t), kInf, 4096));
    f.push_back(integer("model.moe.top_k", 1, MG_ACCESS(model.moe.top_k, int64_t), kInf, 4096));
    f.push_back(integer("model.moe.hidden", 0, MG_ACCESS(model.moe.hidden, int64_t), kInf, 1048576));
    f.push_back(plain("model.moe.activation", Kind::choice, MG_CHOICE(model.moe.activation, kActivations)));
    f.push_back(number("model.moe.balance_coef", 0, false, kInf, false, MG_ACCESS(model.moe.balance_coef, double)));
    f.push_back(number("model.moe.z_coef", 0, false, kInf, false, MG_ACCESS(model.moe.z_coef, double)));
    f.push_back(plain("model.moe.router", Kind::choice, MG_CHOICE(model.moe.router, kRouters)));
    f.push_back(plain("model.moe.normalize_top_k", Kind::boolean, MG_ACCESS(model.moe.normalize_top_k, bool)));
    f.push_back(integer("model.moe.shared_expert_hidden", 0, MG_ACCESS(model.moe.shared_expert_hidden, int64_t), kInf,
                        1048576));
    f.push_back(integer("model.mlp.hidden", 0, MG_ACCESS(model.mlp.hidden, int64_t), kInf, 1048576));
    f.push_back(plain("model.mlp.activation", Kind::choice, MG_CHOICE(model.mlp.activation, kActivations)));
    // data
    f.push_back(plain("data.train", Kind::opt_string, MG_OPT(data.train)));
    f.push_back(plain("data.val", Kind::opt_string, MG_OPT(data.val)));
    f.push_back(plain("data.tokenizer", Kind::opt_string, MG_OPT(data.tokenizer)));
    // train
    f.push_back(integer("train.steps", 1, MG_ACCESS(train.steps, int64_t), kInf, 1e12));
    f.push_back(integer("train.batch_size", 1, MG_ACCESS(train.batch_size, int64_t), kInf, 1048576));
    f.push_back(integer("train.seq_len", 1, MG_ACCESS(train.seq_len, int64_t), kInf, 16777216));
    f.push_back(integer("train.grad_accum", 1, MG_ACCESS(train.grad_accum, int64_t), kInf, 1048576));
    f.push_back(number("train.lr", 0, true, kInf, false, MG_ACCESS(train.lr, double)));
    f.push_back(number("train.min_lr", 0, false, kInf, false, MG_ACCESS(train.min_lr, double)));
    f.push_back(integer("train.warmup_steps", 0, MG_ACCESS(train.warmup_steps, int64_t)));
    f.push_back(number("train.weight_decay", 0, false, kInf, false, MG_ACCESS(train.weight_decay, double)));
    f.push_back(number("train.beta1", 0, false, 1, true, MG_ACCESS(train.beta1, double)));
    f.push_back(number("train.beta2", 0, false, 1, true, MG_ACCESS(train.beta2, double)));
    f.push_back(number("train.eps", 0, true, kInf, false, MG_ACCESS(train.eps, double)));
    f.push_back(number("train.grad_clip", 0, false, kInf, false, MG_ACCESS(train.grad_clip, double)));
    f.push_back(integer("train.seed", 0, MG_ACCESS(train.seed, int64_t)));
    f.push_back(integer("train.log_every", 1, MG_ACCESS(train.log_every, int64_t)));
    f.push_back(plain("train.param_dtype", Kind::choice, MG_CHOICE(train.param_dtype, kStorages)));
    f.push_back(plain("train.fp16_rounding", Kind::choice, MG_CHOICE(train.fp16_rounding, kRoundings)));
    f.push_back(plain("train.compute_dtype", Kind::choice, MG_CHOICE(train.compute_dtype, kComputeDTypes)));
    f.push_back(plain("train.optimizer_states", Kind::choice, MG_CHOICE(train.optimizer_states, kStateFormats)));
    f.push_back(plain("train.optimizer_offload", Kind::choice, MG_CHOICE(train.optimizer_offload, kPlacements)));
    f.push_back(plain(
        "train.gradient_checkpointing", Kind::checkpointing,
        [](const Config& c) {
          for (const auto& p : kCheckpointingPresets)
            if (p.blocks_per_segment == c.train.gradient_checkpointing) return json(p.name);
          return json(c.train.gradient_checkpointing);
        },
        [](Config& c, const json& v) {
          if (v.is_number()) c.train.gradient_checkpointing = v.get<int64_t>();
          for (const auto& p : kCheckpointingPresets)
            if (v.is_string() && v.get<std::string>() == p.name) c.train.gradient_checkpointing = p.blocks_per_segment;
        }));
    f.push_back(plain("train.activation_dtype", Kind::choice, MG_CHOICE(train.activation_dtype, kStorages)));
    f.push_back(plain("train.loss_scaling", Kind::boolean, MG_ACCESS(train.loss_scaling, bool)));
    f.push_back(plain("train.allreduce_bf16", Kind::boolean, MG_ACCESS(train.allreduce_bf16, bool)));
    f.push_back(plain("train.allreduce_overlap", Kind::boolean, MG_ACCESS(train.allreduce_overlap, bool)));
    f.push_back(integer("train.allreduce_bucket", 1, MG_ACCESS(train.allreduce_bucket, int64_t), 1073741823.0));
    f.push_back(integer("train.zero_stage", 0, MG_ACCESS(train.zero_stage, int64_t), 1.0));
    f.push_back(number("train.loss_scale_init", 1, false, 1e30, false, MG_ACCESS(train.loss_scale_init, double)));
    f.push_back(integer("train.loss_scale_growth_interval", 1, MG_ACCESS(train.loss_scale_growth_interval, int64_t)));
    f.push_back(plain("train.objective", Kind::choice, MG_CHOICE(train.objective.objective, kObjectives)));
    f.push_back(number("train.prefix_fraction_min", 0, false, 1, false, MG_ACCESS(train.objective.min_fraction, double)));
    f.push_back(number("train.prefix_fraction_max", 0, false, 1, false, MG_ACCESS(train.objective.max_fraction, double)));
    f.push_back(integer("train.prefix_separator", -1, MG_ACCESS(train.objective.separator, int32_t), kInf, 2147483647.0));
    f.push_back(plain("train.infill_mode", Kind::choice, MG_CHOICE(train.objective.infill.mode, kInfillModes)));
    f.push_back(number("train.infill_ratio", 0, true, 0.5, false, MG_ACCESS(train.objective.infill.ratio, double)));
    f.push_back(number("train.infill_span_lambda", 0, true, 32, false, MG_ACCESS(train.objective.infill.span_lambda, double)));
    f.push_back(number("train.objective_mix.causal", 0, false, kInf, false, MG_ACCESS(train.objective.mix[0], double)));
    f.push_back(number("train.objective_mix.prefix_lm", 0, false, kInf, false, MG_ACCESS(train.objective.mix[1], double)));
    f.push_back(number("train.objective_mix.blank_infilling", 0, false, kInf, false, MG_ACCESS(train.objective.mix[2], double)));
    // lora
    f.push_back(integer("lora.rank", 0, MG_ACCESS(lora.rank, int64_t), 65536.0));
    f.push_back(number("lora.alpha", 0, true, kInf, false, MG_ACCESS(lora.alpha, double)));
    f.push_back(number("lora.dropout", 0, false, 1, true, MG_ACCESS(lora.dropout, double)));
    f.push_back(plain("lora.target_modules", Kind::choice_list, MG_ACCESS(lora.target_modules, std::vector<std::string>),
                      nn::lora_target_kinds()));
    f.push_back(plain("lora.base_precision", Kind::choice, MG_CHOICE(lora.base_precision, kBaseStorages)));
    f.push_back(integer("lora.int4_group_size", 1, MG_ACCESS(lora.int4_group_size, int64_t), 1048576.0));
    // eval
    f.push_back(integer("eval.every", 0, MG_ACCESS(eval.every, int64_t)));
    f.push_back(integer("eval.batches", 1, MG_ACCESS(eval.batches, int64_t), kInf, 1048576));
    // checkpoint
    f.push_back(plain("checkpoint.dir", Kind::string, MG_ACCESS(checkpoint.dir, std::string)));
    f.push_back(integer("checkpoint.every", 0, MG_ACCESS(checkpoint.every, int64_t)));
    f.push_back(integer("checkpoint.keep", 1, MG_ACCESS(checkpoint.keep, int64_t)));
    // device
    f.push_back(plain("device", Kind::string, MG_ACCESS(device, std::string)));
    return f;
  }();
  return fields;
}

const Field* find_field(const std::string& path) {
  for (const auto& f : schema())
    if (f.path == path) return &f;
  return nullptr;
}

// Sections: every proper prefix of a field path ("model", "model.moe", ...).
const std::set<std::string>& sections() {
  static const std::set<std::string> s = [] {
    std::set<std::string> out;
    for (const auto& f : schema())
      for (size_t p = f.path.find('.'); p != std::string::npos; p = f.path.find('.', p + 1))
        out.insert(f.path.substr(0, p));
    return out;
  }();
  return s;
}

std::string join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Optimal string alignment distance (a transposition counts as one edit).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The schema's path nearest to `path`, or "". Keys longer than any schema path plus a few typos
// get no suggestion (the edit distance costs |path| x |candidate| per candidate).
std::string suggestion(const std::string& path) {
  if (path.size() > 100) return "";
  std::vector<std::string> all(sections().begin(), sections().end());
  for (const auto& f : schema()) all.push_back(f.path);
  // The same key in another section ("train.device" -> "device", "model.experts" -> "model.moe.experts").
  const std::string leaf = path.substr(path.rfind('.') == std::string::npos ? 0 : path.rfind('.') + 1);
  for (const auto& p : all)
    if (p == leaf || (p.size() > leaf.size() && p.compare(p.size() - leaf.size() - 1, std::string::npos, "." + leaf) == 0))
      return p;
  std::string best;
  size_t best_d = std::max<size_t>(2, leaf.size() / 3) + 1;
  for (const auto& p : all) {
    const size_t d = edit_distance(path, p);
    if (d < best_d) best_d = d, best = p;
  }
  return best;
}

[[noreturn]] void unknown_key(const std::string& path) {
  const std::string s = suggestion(path);
  throw Error("config: unknown key '" + excerpt(path) + "'" + (s.empty() ? "" : " (did you mean '" + s + "'?)") +
              "; configs/README.md lists every key.");
}

std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean (" + v.dump() + ")";
    case json::value_t::string: return "a string (" + json_excerpt(v) + ")";
    case json::value_t::array: return "a list";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number (" + v.dump() + ")";
    default: return "an integer (" + v.dump() + ")";
  }
}


bool is_integral(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max());
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18;
}

// Type check of one value; integral floats (1e6) are accepted as integers and normalised.
void check_type(const Field& f, json& v) {
  const std::string where = "config: '" + f.path + "' must be ";
  switch (f.kind) {
    case Kind::integer:
      if (!is_integral(v)) throw Error(where + "an integer, got " + describe(v) + ".");
      if (v.is_number_float()) v = static_cast<int64_t>(v.get<double>());
      else v = v.get<int64_t>();
      return;
    case Kind::number:
      if (!v.is_number()) throw Error(where + "a number, got " + describe(v) + ".");
      return;
    case Kind::boolean:
      if (!v.is_boolean()) throw Error(where + "true or false, got " + describe(v) + ".");
      return;
    case Kind::string:
      if (!v.is_string()) throw Error(where + "a string, got " + describe(v) + ".");
      return;
    case Kind::opt_string:
      if (!v.is_string() && !v.is_null()) throw Error(where + "a path (string) or null, got " + describe(v) + ".");
      if (v.is_string() && v.get<std::string>().empty())
        throw Error(where + "a path or null, got an empty string.");
      return;
    case Kind::layers:
      if (!v.is_string() && !v.is_array())
        throw Error(where + "a layer pattern such as \"(MMME)x9MMM\" or a list of \"mamba\" / \"mamba2\" / \"moe\", got " +
                    describe(v) + ".");
      return;
    case Kind::limit:
      if (!v.is_array() || v.size() != 2 || !v[0].is_number() ||
          !(v[1].is_number() || v[1].is_null() || v[1] == "inf"))
        throw Error(where + "a list [lo, hi] of numbers (hi null or \"inf\" for no upper limit), got " +
                    (v.is_array() ? json_excerpt(v) : describe(v)) + ".");
      return;
    case Kind::checkpointing:
      if (is_integral(v)) {
        v = v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>();
        if (v.get<int64_t>() < 0 || v.get<int64_t>() > 2147483647)
          throw Error(where + "\"none\", \"balanced\", \"aggressive\" or an integer in [0, 2147483647], got " +
                      v.dump() + ".");
        return;
      }
      if (!v.is_string() || std::none_of(std::begin(kCheckpointingPresets), std::end(kCheckpointingPresets),
                                         [&](const auto& p) { return v == p.name; }))
        throw Error(where + "\"none\", \"balanced\" (every 2 layers), \"aggressive\" (every 4) or an "
                    "integer k >= 0 (layers per segment), got " + describe(v) + ".");
      return;
    case Kind::choice_list: {
      std::string list;
      for (const auto& c : f.choices) list += (list.empty() ? "\"" : ", \"") + c + "\"";
      if (!v.is_array()) throw Error(where + "a list of names from " + list + ", got " + describe(v) + ".");
      std::set<std::string> seen;
      for (const auto& e : v) {
        if (!e.is_string() || std::find(f.choices.begin(), f.choices.end(), e.get<std::string>()) == f.choices.end())
          throw Error(where + "a list of names from " + list + "; " + json_excerpt(e) + " is not one of them.");
        if (!seen.insert(e.get<std::string>()).second)
          throw Error(where + "a list without repeats; " + json_excerpt(e) + " appears twice.");
      }
      return;
    }
    case Kind::choice: {
      std::string list;
      for (const auto& c : f.choices) list += (list.empty() ? "\"" : " or \"") + c + "\"";
      if (!v.is_string()) throw Error(where + list + ", got " + describe(v) + ".");
      if (std::find(f.choices.begin(), f.choices.end(), v.get<std::string>()) == f.choices.end())
        throw Error(where + list + ", got " + json_excerpt(v) + ".");
      return;
    }
  }
}

// Walks the user's document: unknown keys, non-object sections, value types.
void check_document(json& doc, const std::string& prefix) {
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string path = join(prefix, it.key());
    if (const Field* f = find_field(path)) {
      check_type(*f, it.value());
    } else if (sections().count(path)) {
      if (!it.value().is_object())
        throw Error("config: '" + path + "' must be an object (a section), got " + describe(it.value()) + ".");
      check_document(it.value(), path);
    } else {
      unknown_key(path);
    }
  }
}

const json* lookup(const json& doc, const std::string& path) {
  const json* cur = &doc;
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

void check_range(const Field& f, const json& v) {
  if (f.kind == Kind::string && f.path == "checkpoint.dir" && v.get<std::string>().empty())
    throw Error("config: 'checkpoint.dir' must be a folder name, got an empty string.");
  if (f.kind == Kind::limit) {
    const double lo = v[0].get<double>(), hi = v[1].is_number() ? v[1].get<double>() : kInf;
    if (!(lo >= 0) || !(hi > lo))
      throw Error("config: '" + f.path + "' must be [lo, hi] with 0 <= lo < hi, got " + json_excerpt(v) + ".");
    return;
  }
  if (f.kind != Kind::integer && f.kind != Kind::number) return;
  const double x = v.get<double>();
  const bool low = f.lo_open ? !(x > f.lo) : !(x >= f.lo);
  const bool high = f.hi_open ? !(x < f.hi) : !(x <= f.hi);
  if (!low && !high && x > f.cap)
    throw Error("config: '" + f.path + "' must be <= " + number_str(f.cap) + " (the largest Magellano supports), got " +
                (f.kind == Kind::integer ? v.dump() : number_str(x)) + ".");
  if (!low && !high) return;
  std::string want;
  if (f.hi == kInf) want = std::string(f.lo_open ? "> " : ">= ") + number_str(f.lo);
  else if (f.lo_open && f.hi_open) want = "in (" + number_str(f.lo) + ", " + number_str(f.hi) + ")";
  else if (f.hi_open) want = "in [" + number_str(f.lo) + ", " + number_str(f.hi) + ")";
  else want = "in [" + number_str(f.lo) + ", " + number_str(f.hi) + "]";
  throw Error("config: '" + f.path + "' must be " + want + ", got " +
              (f.kind == Kind::integer ? v.dump() : number_str(x)) + ".");
}

int64_t default_hidden(int64_t dim) {
  const int64_t h = static_cast<int64_t>(std::llround(2.75 * static_cast<double>(dim) / 64.0)) * 64;
  return std::max<int64_t>(64, h);
}

// Derived values, cross-field rules.
void resolve(Config& c) {
  ModelConfig& m = c.model;
  m.pattern = parse_layer_pattern(m.layers, "'model.layers'");
  if (m.dt_rank == 0) m.dt_rank = (m.dim + 15) / 16;
  if (m.moe.hidden == 0) m.moe.hidden = default_hidden(m.dim);
  if (m.num_mamba2() > 0) m.mamba2.check(m.dim);  // the section is unused without 'S' blocks
  if (m.num_attention() > 0) m.attention.check(m.dim);  // nor this one without 'A' blocks
  if (m.moe.top_k > m.moe.experts)
    throw Error("config: 'model.moe.top_k' (" + std::to_string(m.moe.top_k) +
                ") must be <= 'model.moe.experts' (" + std::to_string(m.moe.experts) + ").");
  if (m.moe.router == nn::MoERouter::topk_softmax && !m.moe.normalize_top_k)
    throw Error("config: 'model.moe.normalize_top_k' false needs 'model.moe.router' \"softmax_topk\" "
                "(\"topk_softmax\" weights always sum to 1); remove it or use \"softmax_topk\".");
  const TrainConfig& t = c.train;
  if (c.lora.enabled() && c.lora.target_modules.empty())
    throw Error("config: 'lora.target_modules' is empty while 'lora.rank' is " + std::to_string(c.lora.rank) +
                "; name at least one module kind (e.g. [\"in_proj\", \"out_proj\"]) or set lora.rank to 0.");
  if (!c.lora.enabled() && c.lora.base_precision != nn::WeightStorage::f32)
    throw Error("config: 'lora.base_precision' \"" + std::string(config_name(c.lora.base_precision)) +
                "\" needs LoRA (frozen base weights): set 'lora.rank' >= 1, or use \"fp32\".");
  const bool fp16_params = t.param_dtype == DType::f16;
  if (fp16_params && c.lora.enabled())
    throw Error("config: 'train.param_dtype' \"fp16\" is for full training; with LoRA the adapters "
                "train in fp32 and 'lora.base_precision' sets the frozen base's storage. Use \"fp32\".");
  if (!fp16_params && t.fp16_rounding != Fp16Rounding::stochastic)
    throw Error("config: 'train.fp16_rounding' \"" + std::string(config_name(t.fp16_rounding)) + "\" rounds fp16 parameters: it needs "
                "'train.param_dtype' \"fp16\" (remove it, or use fp16 parameters).");
  if (fp16_params && !t.loss_scaling)
    throw Error("config: 'train.param_dtype' \"fp16\" stores gradients in fp16 too, where small ones "
                "underflow to zero: set 'train.loss_scaling' to true (dynamic loss scaling).");
  if (m.infill_positions == data::InfillPositions::glm2d && (m.num_attention() == 0 || m.attention.rope_theta == 0.0))
    throw Error("config: 'model.infill_positions' \"glm2d\" gives GLM's 2D ids to rotary attention ('A') layers; "
                "the model has " + std::string(m.num_attention() == 0 ? "none" : "no rotary positions (rope_theta 0)") +
                ": use \"sequential\".");
  if (m.bidirectional_prefix && m.num_mamba() + m.num_mamba2() == 0)
    throw Error("config: 'model.bidirectional_prefix' reverses the prefix in Mamba ('M') and Mamba2 ('S') "
                "layers, and 'model.layers' has none; remove it.");
  if (t.objective.min_fraction > t.objective.max_fraction)
    throw Error("config: 'train.prefix_fraction_min' (" + number_str(t.objective.min_fraction) +
                ") must be <= 'train.prefix_fraction_max' (" + number_str(t.objective.max_fraction) + ").");
  if (t.objective.separator >= m.vocab_size)
    throw Error("config: 'train.prefix_separator' " + std::to_string(t.objective.separator) +
                " is not a token of the model's vocabulary of " + std::to_string(m.vocab_size) + ".");
  if (t.objective.mixed() && t.objective.objective != data::Objective::causal)
    throw Error("config: give 'train.objective' or 'train.objective_mix', not both (the mix picks each "
                "sequence's objective).");
  for (const auto o : {data::Objective::prefix_lm, data::Objective::blank_infilling})
    if (t.objective.uses(o) && m.num_attention() == 0)
      throw Error(std::string("config: 'train.objective' \"") + data::to_string(o) + "\" makes the prefix "
                  "bidirectional in attention layers, and 'model.layers' has none; add 'A' layers or use \"causal\".");
  if (t.objective.uses(data::Objective::blank_infilling)) {
    data::infill_tokens(m.vocab_size);  // at least 4 ids
    if (t.seq_len < 3)
      throw Error("config: blank infilling needs 'train.seq_len' >= 3 ([MASK], [START], one span token).");
  }
  if (t.activation_dtype == DType::f16 && t.gradient_checkpointing == 0)
    throw Error("config: 'train.activation_dtype' \"fp16\" stores the segment inputs of gradient "
                "checkpointing; set 'train.gradient_checkpointing' (e.g. \"balanced\") or use \"fp32\".");
  if (t.min_lr > t.lr)
    throw Error("config: 'train.min_lr' (" + number_str(t.min_lr) + ") must be <= 'train.lr' (" +
                number_str(t.lr) + ").");
  if (t.warmup_steps > t.steps)
    throw Error("config: 'train.warmup_steps' (" + std::to_string(t.warmup_steps) +
                ") must be <= 'train.steps' (" + std::to_string(t.steps) + ").");
  // Every derived count (parameters, the memory estimate and the tensors in it) must fit int64:
  // model_size.cpp counts with overflow checks and throws for a model too large to count.
  try {
    (void)estimate_memory(c);
  } catch (const Error& e) {
    throw Error(std::string("config: ") + e.what());
  }
}

void deep_merge(json& into, const json& from) {
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (it.value().is_object() && into.contains(it.key()) && into[it.key()].is_object())
      deep_merge(into[it.key()], it.value());
    else
      into[it.key()] = it.value();
  }
}

std::string read_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error("config: cannot read '" + path +
                "': no such file. Give the path of a JSON config, e.g. configs/tiny.json.");
  if (fs::is_directory(path, ec))
    throw Error("config: '" + path + "' is a folder; give the path of a JSON config file.");
  return read_whole_file(path, "config: file", " Give the path of a JSON config, e.g. configs/tiny.json.");
}

}  // namespace

std::string number_str(double x) {
  if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));  // 65536, not 65536.0
  std::ostringstream os;
  os << x;
  return os.str();
}

const char* config_name(DType storage) {
  switch (storage) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    default: return to_string(storage);
  }
}
const char* config_name(nn::WeightStorage storage) { return nn::to_string(storage); }
const char* config_name(ComputeDType d) { return ops::to_string(d); }
const char* config_name(Fp16Rounding rounding) {
  return rounding == Fp16Rounding::stochastic ? "stochastic" : "nearest";
}
const char* config_name(optim::StateFormat format) {
  return format == optim::StateFormat::fp32 ? "fp32" : "int8";
}
const char* config_name(optim::StatePlacement placement) {
  return placement == optim::StatePlacement::device ? "none" : "host";
}
const char* config_name(ops::ExpertActivation activation) {
  return activation == ops::ExpertActivation::swiglu ? "swiglu" : "gelu";
}

const char* config_name(data::Objective objective) { return data::to_string(objective); }
const char* config_name(data::InfillMode mode) { return data::to_string(mode); }
const char* config_name(data::InfillPositions p) { return data::to_string(p); }

const char* config_name(nn::MoERouter router) {
  return router == nn::MoERouter::softmax_topk ? "softmax_topk" : "topk_softmax";
}

int64_t ModelConfig::num_mamba() const {
  return std::count(pattern.begin(), pattern.end(), LayerKind::mamba);
}
int64_t ModelConfig::num_mamba2() const {
  return std::count(pattern.begin(), pattern.end(), LayerKind::mamba2);
}
int64_t ModelConfig::num_attention() const {
  return std::count(pattern.begin(), pattern.end(), LayerKind::attention);
}
int64_t ModelConfig::num_mlp() const { return std::count(pattern.begin(), pattern.end(), LayerKind::mlp); }
int64_t ModelConfig::num_moe() const { return std::count(pattern.begin(), pattern.end(), LayerKind::moe); }

nn::MambaConfig ModelConfig::mamba_config() const {
  nn::MambaConfig m;
  m.dim = dim;
  m.d_state = d_state;
  m.d_conv = d_conv;
  m.expand = expand;
  m.dt_rank = dt_rank;
  m.inner_norms = mamba_inner_norms;
  m.bidirectional_prefix = bidirectional_prefix;
  m.proj_bias = mamba_proj_bias;
  m.conv_bias = mamba_conv_bias;
  m.norm_eps = static_cast<float>(norm_eps);
  m.num_layers = std::max<int64_t>(1, static_cast<int64_t>(pattern.size()));
  m.scan_chunk = static_cast<int>(scan_chunk);  // <= 16777216 (the schema's cap)
  return m;
}

nn::MoEConfig ModelConfig::moe_config() const {
  nn::MoEConfig m{};
  m.dim = dim;
  m.hidden = moe.hidden;
  m.experts = moe.experts;
  m.top_k = moe.top_k;
  m.swiglu = moe.activation == ops::ExpertActivation::swiglu;
  m.balance_coef = static_cast<float>(moe.balance_coef);
  m.z_coef = static_cast<float>(moe.z_coef);
  m.router = moe.router;
  m.normalize_top_k = moe.normalize_top_k;
  m.shared_hidden = moe.shared_expert_hidden;
  return m;
}

nn::MlpConfig ModelConfig::mlp_config() const {
  return {dim, mlp.hidden > 0 ? mlp.hidden : moe.hidden, mlp.activation == ops::ExpertActivation::swiglu};
}

Config Config::defaults() { return from_json(json::object()); }

Config Config::from_json(const json& j) {
  if (!j.is_object()) throw Error("config: the top level must be a JSON object, got " + describe(j) + ".");
  json doc = j;
  check_document(doc, "");
  Config c;
  for (const auto& f : schema())
    if (const json* v = lookup(doc, f.path)) f.set(c, *v);
  for (const auto& f : schema()) check_range(f, f.get(c));
  resolve(c);
  return c;
}

json Config::to_json() const {
  json j = json::object();
  for (const auto& f : schema()) {
    std::string ptr = "/" + f.path;
    std::replace(ptr.begin(), ptr.end(), '.', '/');
    j[json::json_pointer(ptr)] = f.get(*this);
  }
  return j;
}

void Config::require_training_data() const {
  if (!data.train)
    throw Error("config: 'data.train' is not set; training needs a token file (make one with "
                "`magellano tokenize`, then add \"data\": {\"train\": PATH} or --set data.train=PATH).");
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& f : schema()) out.push_back(f.path);
  return out;
}

void apply_set(json& doc, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("config: --set '" + excerpt(assignment) + "' must look like key.path=value, e.g. train.lr=3e-4.");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  const bool is_section = sections().count(key) > 0;
  if (!find_field(key) && !is_section) unknown_key(key);
  // JSON when it parses (within parse_json's limits), else a plain string (gpu, configs/x.tok,
  // (MMME)x9MMM).
  json value = json::accept(text) ? parse_json(text, "config: --set " + key + "=...") : json(text);
  // A string key given a bare number or boolean takes the text as written (--set device=1).
  if (const Field* f = find_field(key);
      f && (value.is_number() || value.is_boolean()) &&
      (f->kind == Kind::string || f->kind == Kind::opt_string || f->kind == Kind::layers ||
       f->kind == Kind::choice))
    value = text;
  if (is_section && !value.is_object())
    throw Error("config: --set " + key + "=...: '" + key + "' is a section; set one of its keys, e.g. " +
                key + "." + [&] {
                  for (const auto& f : schema())
                    if (f.path.rfind(key + ".", 0) == 0) return f.path.substr(key.size() + 1);
                  return std::string();
                }() + "=VALUE.");
  if (!doc.is_object()) doc = json::object();
  json* cur = &doc;
  size_t start = 0;
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    const std::string part = key.substr(start, dot - start);
    json& next = (*cur)[part];
    if (next.is_null()) next = json::object();
    if (!next.is_object())
      throw Error("config: '" + key.substr(0, dot) + "' must be an object (a section), got " + describe(next) + ".");
    cur = &next;
    start = dot + 1;
  }
  json& slot = (*cur)[key.substr(start)];
  if (is_section && slot.is_object()) deep_merge(slot, value);
  else slot = value;
}

Config load_config(const std::string& path, const std::vector<std::string>& sets) {
  return parse_config(read_file(path), path, sets);
}

Config parse_config(std::string_view text, const std::string& path, const std::vector<std::string>& sets) {
  json doc = parse_json(text, "config: '" + path + "'", "", {.comments = true});
  Config c;
  try {
    c = Config::from_json(doc);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in " + path + ")");
  }
  if (sets.empty()) return c;
  std::string all;
  for (const auto& s : sets) {
    apply_set(doc, s);
    all += (all.empty() ? "--set " : ", --set ") + excerpt(s);
  }
  try {
    return Config::from_json(doc);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (from " + all + ")");
  }
}

}  // namespace magellano::train
