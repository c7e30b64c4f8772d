#include "options.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>

namespace magellano::cli {
namespace po = boost::program_options;

void add_common_options(po::options_description& desc, unsigned which) {
  desc.add_options()("help,h", "show this help");
  if (which & kDevice)
    desc.add_options()("device", po::value<std::string>()->value_name("D"),
                       "OpenCL device: P:D, cpu, gpu or part of a name (default: MAGELLANO_DEVICE, "
                       "else the first GPU; `magellano info` lists them)");
  if (which & kJson) desc.add_options()("json", "print JSON instead of text");
}

std::string device_option(const po::variables_map& vm) {
  return vm.count("device") ? vm["device"].as<std::string>() : std::string();
}

bool json_option(const po::variables_map& vm) { return vm.count("json") > 0; }

std::optional<int64_t> parse_integer(const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || text.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_number(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || text.empty() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

namespace {

// "in [1, 1048576]", ">= 0", "in (0, 1]", "> 0"
std::string range_text(double lo, double hi, bool lo_open, bool hi_open, bool integer) {
  const auto num = [integer](double v) { return integer ? std::to_string(int64_t(v)) : number_text(v); };
  if (std::isinf(hi)) return std::string(lo_open ? "> " : ">= ") + num(lo);
  return std::string("in ") + (lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]");
}

// Quotes a user's value in a message, cut to 40 characters.
std::string quoted(const std::string& text) {
  return "'" + (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "'";
}

po::typed_value<std::string>* string_value(const std::optional<std::string>& shown_default, const char* value_name) {
  auto* v = po::value<std::string>()->value_name(value_name);
  if (shown_default) v->default_value(*shown_default);
  return v;
}

}  // namespace

void add_integer_option_to(po::options_description& desc, const std::string& name, std::function<void(int64_t)> store,
                           std::optional<std::string> shown_default, int64_t lo, int64_t hi, const std::string& help) {
  auto* v = string_value(shown_default, "N");
  v->notifier([=](const std::string& text) {
    const auto n = parse_integer(text);
    if (!n || *n < lo || *n > hi)
      throw po::error("--" + name + " must be " +
                      range_text(double(lo), hi == INT64_MAX ? INFINITY : double(hi), false, false, true) +
                      " (an integer), got " + quoted(text));
    store(*n);
  });
  desc.add_options()(name.c_str(), v, help.c_str());
}

void add_number_option_to(po::options_description& desc, const std::string& name, std::function<void(double)> store,
                          std::optional<std::string> shown_default, NumberRange r, const std::string& help) {
  auto* v = string_value(shown_default, "X");
  v->notifier([=](const std::string& text) {
    const auto x = parse_number(text);
    if (!x || (r.lo_open ? *x <= r.lo : *x < r.lo) || (r.hi_open ? *x >= r.hi : *x > r.hi))
      throw po::error("--" + name + " must be " + range_text(r.lo, r.hi, r.lo_open, r.hi_open, false) +
                      " (a finite number), got " + quoted(text));
    store(*x);
  });
  desc.add_options()(name.c_str(), v, help.c_str());
}

bool parse_options(const po::options_description& desc, int argc, char** argv, po::variables_map& vm) {
  const po::parsed_options parsed = po::command_line_parser(argc, argv).options(desc).run();
  // Boost drops words that belong to no option; a stray word is a mistake worth naming.
  for (const auto& o : parsed.options)
    if (o.position_key >= 0 && !o.original_tokens.empty())
      throw po::error("unexpected argument '" + o.original_tokens.front() + "'");
  po::store(parsed, vm);
  if (vm.count("help")) {  // before notify(): --help alone must not trip required options
    std::cout << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace magellano::cli
