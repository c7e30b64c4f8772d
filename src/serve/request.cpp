#include "magellano/serve/request.hpp"

#include <cmath>
#include <cstdio>
#include <set>

namespace magellano::serve {

using nlohmann::json;

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A number field in [lo, hi]; nullopt when absent or null.
std::optional<double> number(const json& body, const char* key, double lo, double hi) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number()) throw bad(key, std::string("'") + key + "' must be a number, got " + type_name(v) + ".");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi) || !std::isfinite(x))
    throw bad(key, std::string("'") + key + "' must be in [" + number_text(lo) + ", " + number_text(hi) + "], got " +
                       v.dump() + ".");
  return x;
}

// An integer field in [lo, hi] (a float with an integral value, e.g. 16.0, is refused: OpenAI does too).
std::optional<int64_t> integer(const json& body, const char* key, int64_t lo, int64_t hi) {
  if (!body.contains(key) || body[key].is_null()) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number_integer())
    throw bad(key, std::string("'") + key + "' must be an integer, got " + type_name(v) + ".");
  const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                                     (lo <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(lo))
                                               : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  if (!in_range)
    throw bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got " + v.dump() + ".");
  return v.get<int64_t>();
}

bool boolean(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return false;
  if (!body[key].is_boolean())
    throw bad(key, std::string("'") + key + "' must be true or false, got " + type_name(body[key]) + ".");
  return body[key].get<bool>();
}

// A list of token ids, or nullopt when `v` is not a list of integers.
std::optional<std::vector<int32_t>> id_list(const json& v) {
  if (!v.is_array() || v.empty()) return std::nullopt;
  std::vector<int32_t> ids;
  for (const json& e : v) {
    if (!e.is_number_integer()) return std::nullopt;
    if (e.is_number_unsigned() ? e.get<uint64_t>() > INT32_MAX : (e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX))
      throw bad("prompt", "'prompt' token ids must be in [0, 2^31), got " + e.dump() + ".");
    ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
  }
  return ids;
}

void read_prompt(const json& body, CompletionRequest& r) {
  if (!body.contains("prompt") || body["prompt"].is_null())
    throw bad("prompt", "'prompt' is required: a string or a list of token ids.");
  json p = body["prompt"];
  // A list holding one prompt (a string or a list of ids) is that prompt; several are refused.
  if (p.is_array() && !p.empty() && (p[0].is_string() || p[0].is_array())) {
    if (p.size() != 1)
      throw bad("prompt", "'prompt' holds " + std::to_string(p.size()) +
                              " prompts; this server takes one per request (send several requests: they are batched).");
    p = json(p[0]);
  }
  if (p.is_string()) {
    if (p.get<std::string>().empty()) throw bad("prompt", "'prompt' is empty; give some text or token ids.");
    r.prompt_text = p.get<std::string>();
    return;
  }
  auto ids = id_list(p);
  if (!ids) throw bad("prompt", "'prompt' must be a string or a non-empty list of token ids, got " + type_name(p) + ".");
  r.prompt_ids = std::move(*ids);
}

void read_stop(const json& body, CompletionRequest& r) {
  if (!body.contains("stop") || body["stop"].is_null()) return;
  const json& s = body["stop"];
  if (s.is_string()) {
    r.stop.push_back(s.get<std::string>());
  } else if (s.is_array()) {
    for (const json& e : s) {
      if (!e.is_string()) throw bad("stop", "'stop' must be a string or a list of strings, got a list holding " + type_name(e) + ".");
      r.stop.push_back(e.get<std::string>());
    }
  } else {
    throw bad("stop", "'stop' must be a string or a list of strings, got " + type_name(s) + ".");
  }
  if (r.stop.size() > 4) throw bad("stop", "'stop' takes at most 4 strings, got " + std::to_string(r.stop.size()) + ".");
  for (const auto& s1 : r.stop)
    if (s1.empty()) throw bad("stop", "'stop' strings must not be empty.");
}

// Completions-only fields accepted only at their neutral value, with what to use instead.
void refuse_unsupported(const json& body, const CompletionRequest& r) {
  if (body.contains("suffix") && !body["suffix"].is_null())
    throw bad("suffix", "'suffix' (insertion) is not supported by this server; leave it out.");
  if (const auto best_of = integer(body, "best_of", 1, 1 << 20); best_of && *best_of != r.n)
    throw bad("best_of", "'best_of' other than n is not supported by this server (choices are not ranked).");
  if (r.echo && r.logprobs)
    throw bad("logprobs", "'echo' together with 'logprobs' (log-probabilities of the prompt) is not supported; drop one.");
}

}  // namespace

json parse_body(const std::string& text) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {  // syntax, and numbers out of range (1e999999: out_of_range.406)
    throw ApiError(400, std::string("The body is not valid JSON: ") + e.what(), "", "invalid_json");
  }
  if (!body.is_object()) throw ApiError(400, "The body must be a JSON object, got " + type_name(body) + ".", "", "invalid_json");
  return body;
}

void check_model(const json& body, const std::string& model_id) {
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) throw bad("model", "'model' must be a string, got " + type_name(body["model"]) + ".");
    if (body["model"].get<std::string>() != model_id)
      throw ApiError(404, "The model '" + body["model"].get<std::string>() + "' does not exist; this server serves '" +
                              model_id + "' (GET /v1/models).", "model", "model_not_found");
  }
}

void read_sampling_fields(const json& body, CompletionRequest& r, const ServeLimits& limits) {
  r.max_tokens = integer(body, "max_tokens", 1, limits.max_tokens).value_or(std::min<int64_t>(16, limits.max_tokens));
  r.sampling.temperature = static_cast<float>(number(body, "temperature", 0.0, 2.0).value_or(1.0));
  r.sampling.top_p = static_cast<float>(number(body, "top_p", 0.0, 1.0).value_or(1.0));
  r.sampling.top_k = std::max<int64_t>(0, integer(body, "top_k", -1, INT32_MAX).value_or(0));
  const auto rp = number(body, "repetition_penalty", 0.0, 1e6);
  if (rp && *rp <= 0.0) throw bad("repetition_penalty", "'repetition_penalty' must be > 0 (1 = off), got " + json(*rp).dump() + ".");
  r.sampling.repetition_penalty = static_cast<float>(rp.value_or(1.0));
  r.n = integer(body, "n", 1, limits.max_n).value_or(1);
  if (const auto seed = integer(body, "seed", 0, INT64_MAX)) {
    r.sampling.seed = static_cast<uint64_t>(*seed);
    r.seed_given = true;
  }
  read_stop(body, r);
  r.stream = boolean(body, "stream");
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) throw bad("stream_options", "'stream_options' must be an object, got " + type_name(so) + ".");
    if (!r.stream) throw bad("stream_options", "'stream_options' is only allowed with 'stream': true.");
    for (const auto& [key, value] : so.items())
      if (key != "include_usage") throw bad("stream_options", "Unrecognized stream option: '" + key + "'.");
    r.include_usage = boolean(so, "include_usage");
  }
  if (body.contains("user") && !body["user"].is_null() && !body["user"].is_string())
    throw bad("user", "'user' must be a string, got " + type_name(body["user"]) + ".");
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    const auto v = number(body, key, -2.0, 2.0);
    if (v && *v != 0.0)
      throw bad(key, std::string("'") + key + "' (OpenAI's additive penalty) is not supported by this server; use "
                     "'repetition_penalty' (Hugging Face's multiplicative penalty, e.g. 1.2) or leave it at 0.");
  }
  if (body.contains("logit_bias") && !body["logit_bias"].is_null() &&
      !(body["logit_bias"].is_object() && body["logit_bias"].empty()))
    throw bad("logit_bias", "'logit_bias' is not supported by this server; leave it out.");
}

std::string json_type_name(const json& v) { return type_name(v); }

std::optional<int64_t> integer_field(const json& body, const char* key, int64_t lo, int64_t hi) {
  return integer(body, key, lo, hi);
}

bool boolean_field(const json& body, const char* key) { return boolean(body, key); }

CompletionRequest parse_completion_request(const json& body, const std::string& model_id, const ServeLimits& limits) {
  static const std::set<std::string> known = {
      "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed", "echo", "logprobs",
      "stream", "stream_options", "user", "best_of", "presence_penalty", "frequency_penalty", "logit_bias", "suffix",
      "repetition_penalty"};
  for (const auto& [key, value] : body.items())
    if (!known.count(key))
      throw bad(key, "Unrecognized request argument supplied: '" + key + "'.");
  check_model(body, model_id);
  CompletionRequest r;
  read_prompt(body, r);
  read_sampling_fields(body, r, limits);
  r.echo = boolean(body, "echo");
  r.logprobs = integer(body, "logprobs", 0, 5);
  refuse_unsupported(body, r);
  return r;
}

}  // namespace magellano::serve
