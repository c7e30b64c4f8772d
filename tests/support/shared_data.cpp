#include "shared_data.hpp"

#include <fstream>
#include <random>
#include <sstream>

namespace mgdata {
namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::vector<std::string> split_cases(const std::string& text, const std::string& separator) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t p = text.find(separator); p != std::string::npos; p = text.find(separator, start)) {
    out.push_back(text.substr(start, p - start));
    start = p + separator.size();
  }
  return out;
}

std::vector<uint32_t> parse_ids(const std::string& line) {
  std::vector<uint32_t> ids;
  std::istringstream ss(line);
  uint64_t v;
  while (ss >> v) ids.push_back(static_cast<uint32_t>(v));
  return ids;
}

}  // namespace mgdata
