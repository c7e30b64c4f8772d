// The build options of a kernel program, typed: `-D` knobs (with an integer value or none) and
// compiler flags. str() is canonical, knobs sorted by name and then flags sorted, so the same
// knobs always give the same string and hence the same program-cache key:
//   BuildOptions().define("MR", 6).define("ALIGNED").flag("-w")  ->  "-DALIGNED -DMR=6 -w"
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace magellano {

class BuildOptions {
 public:
  // -DNAME=value. NAME is a C identifier; each knob is defined once (twice throws Error).
  BuildOptions& define(const std::string& name, int64_t value);
  // -DNAME, defined without a value.
  BuildOptions& define(const std::string& name);
  // A compiler option of one word other than -D, e.g. "-cl-fp32-correctly-rounded-divide-sqrt"
  // or "-w". Adding one twice keeps one.
  BuildOptions& flag(const std::string& option);

  std::string str() const;  // "" when there are none
  bool operator==(const BuildOptions&) const = default;

 private:
  BuildOptions& add_define(const std::string& name, std::optional<int64_t> value);
  std::map<std::string, std::optional<int64_t>> defines_;
  std::set<std::string> flags_;
};

}  // namespace magellano
