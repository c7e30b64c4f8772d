// The benchmark registry and each benchmark's options: values checked against their keys' kinds.

#include <sstream>

#include "bench.hpp"
#include "../options.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {

std::vector<Bench>& registry() {
  static std::vector<Bench> all;
  return all;
}

using cli::parse_integer;
using cli::parse_number;

Options::Options(const std::vector<Key>& keys, const std::map<std::string, std::string>& given) {
  for (const Key& k : keys) {
    const auto it = given.find(k.name);
    if (it == given.end() && k.fallback.empty()) continue;
    const std::string& v = it != given.end() ? it->second : k.fallback;
    if (k.kind == Key::integer && !parse_integer(v))
      throw Error("--" + k.name + " must be an integer, not '" + v + "'.");
    if (k.kind == Key::number && !parse_number(v))
      throw Error("--" + k.name + " must be a number, not '" + v + "'.");
    values_[k.name] = v;
  }
}

std::string Options::str(const std::string& key) const {
  const auto it = values_.find(key);
  if (it == values_.end()) throw Error("--" + key + " has no value and no default.");
  return it->second;
}

int64_t Options::integer(const std::string& key) const {
  const std::string v = str(key);
  if (const auto i = parse_integer(v)) return *i;
  throw Error("--" + key + " must be an integer, not '" + v + "'.");
}

double Options::number(const std::string& key) const {
  const std::string v = str(key);
  if (const auto x = parse_number(v)) return *x;
  throw Error("--" + key + " must be a number, not '" + v + "'.");
}

int repeats_option(const Options& opts, int fallback) {
  const int64_t r = opts.integer("repeats", fallback);
  if (r < 1 || r > 1000) throw Error("--repeats must be between 1 and 1000.");
  return static_cast<int>(r);
}

int64_t integer_in(const Options& opts, const std::string& key, int64_t lo, int64_t hi) {
  const int64_t v = opts.integer(key);
  if (v < lo || v > hi)
    throw Error("--" + key + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                ", not " + std::to_string(v) + ".");
  return v;
}

std::vector<int64_t> list_option(const Options& opts, const std::string& key, const std::string& example) {
  std::vector<int64_t> out;
  std::stringstream ss(opts.str(key));
  for (std::string part; std::getline(ss, part, ',');) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || v < 1) throw Error("--" + key + " must be positive integers separated by commas, e.g. " + example + ".");
    out.push_back(v);
  }
  if (out.empty()) throw Error("--" + key + " is empty.");
  return out;
}

}  // namespace magellano::bench
