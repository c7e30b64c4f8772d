#include "magellano/runtime/build_options.hpp"

#include "magellano/runtime/error.hpp"

namespace magellano {
namespace {

bool is_identifier(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  return true;
}

}  // namespace

BuildOptions& BuildOptions::define(const std::string& name, int64_t value) { return add_define(name, value); }
BuildOptions& BuildOptions::define(const std::string& name) { return add_define(name, std::nullopt); }

BuildOptions& BuildOptions::add_define(const std::string& name, std::optional<int64_t> value) {
  if (!is_identifier(name))
    throw Error("BuildOptions: '" + name + "' is not a valid knob name (letters, digits and '_').");
  if (!defines_.emplace(name, value).second)
    throw Error("BuildOptions: the knob " + name + " is defined twice.");
  return *this;
}

BuildOptions& BuildOptions::flag(const std::string& option) {
  if (option.size() < 2 || option[0] != '-' || option.rfind("-D", 0) == 0 ||
      option.find_first_of(" \t\n") != std::string::npos)
    throw Error("BuildOptions: '" + option + "' is not a single compiler flag (use define() for -D).");
  flags_.insert(option);
  return *this;
}

std::string BuildOptions::str() const {
  std::string s;
  auto add = [&s](const std::string& word) {
    if (!s.empty()) s += ' ';
    s += word;
  };
  for (const auto& [name, value] : defines_)
    add(value ? "-D" + name + '=' + std::to_string(*value) : "-D" + name);
  for (const std::string& f : flags_) add(f);
  return s;
}

}  // namespace magellano
