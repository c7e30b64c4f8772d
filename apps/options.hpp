// Command-line parsing shared by the subcommands (Boost.ProgramOptions): the options every
// command has (--help, and --device and --json where they apply), each with one help text, and
// the one parse every command goes through.
#pragma once
#include <boost/program_options.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace magellano::cli {

// Which of the common options a command takes besides --help (which every command has).
enum CommonOptions : unsigned {
  kHelpOnly = 0,
  kDevice = 1,  // --device D: the OpenCL device; read it with device_option(vm)
  kJson = 2,    // --json: machine-readable output; test it with json_option(vm)
};

// Adds --help (-h) and the common options that `which` names (e.g. kDevice | kJson) to desc.
void add_common_options(boost::program_options::options_description& desc, unsigned which);

// The --device value, or "" (then MAGELLANO_DEVICE, else the first GPU, else the first device).
std::string device_option(const boost::program_options::variables_map& vm);
// Whether --json was given.
bool json_option(const boost::program_options::variables_map& vm);

// Numeric options are parsed and range-checked here, not by Boost (which reads "-1" into an
// unsigned as 4294967295 and names no range). A bad value throws a boost::program_options::error
// that states the range, e.g. "--batch must be in [1, 1048576] (an integer), got '0'" (main:
// one line, exit 2). The value is stored into *target when the option is given; otherwise
// *target keeps its value, shown in --help as the default when `show_default`.
//   cli::add_integer_option(opts, "batch", &batch, 1, 1 << 20, "chunks evaluated together");
//   cli::add_number_option(opts, "top-p", &top_p, {0, 1}, "nucleus probability (1 = off)");
struct NumberRange {
  double lo, hi;                          // hi = INFINITY: no upper bound
  bool lo_open = false, hi_open = false;  // (lo, ... / ..., hi)
};
void add_integer_option_to(boost::program_options::options_description& desc, const std::string& name,
                           std::function<void(int64_t)> store, std::optional<std::string> shown_default,
                           int64_t lo, int64_t hi, const std::string& help);
void add_number_option_to(boost::program_options::options_description& desc, const std::string& name,
                          std::function<void(double)> store, std::optional<std::string> shown_default,
                          NumberRange range, const std::string& help);
std::string number_text(double v);  // "0.5", "1", "1e-05" (%g)

template <class T>
void add_integer_option(boost::program_options::options_description& desc, const std::string& name, T* target,
                        int64_t lo, int64_t hi, const std::string& help, bool show_default = true) {
  static_assert(std::is_integral_v<T>);
  if (lo < int64_t(std::numeric_limits<T>::min()) || uint64_t(hi) > uint64_t(std::numeric_limits<T>::max()))
    throw std::logic_error("--" + name + ": the range does not fit the option's type");
  add_integer_option_to(
      desc, name, [target](int64_t v) { *target = static_cast<T>(v); },
      show_default ? std::optional<std::string>(std::to_string(*target)) : std::nullopt, lo, hi, help);
}
template <class T>
void add_number_option(boost::program_options::options_description& desc, const std::string& name, T* target,
                       NumberRange range, const std::string& help, bool show_default = true) {
  static_assert(std::is_floating_point_v<T>);
  add_number_option_to(
      desc, name, [target](double v) { *target = static_cast<T>(v); },
      show_default ? std::optional<std::string>(number_text(double(*target))) : std::nullopt, range, help);
}

// The whole of `text` as an integer / a finite number, or nullopt ("12x", "", "nan", "1e999").
std::optional<int64_t> parse_integer(const std::string& text);
std::optional<double> parse_number(const std::string& text);

// Parses argv (argv[0] is the subcommand's name) into vm. With --help it prints the options and
// returns false: the command then exits 0 without doing anything. Unknown or malformed options,
// and arguments that are not options, throw a boost::program_options::error (main prints one
// line and exits 2).
bool parse_options(const boost::program_options::options_description& desc, int argc, char** argv,
                   boost::program_options::variables_map& vm);

}  // namespace magellano::cli
