#include "gguf_reader.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace mgtest {
namespace {

// IEEE binary16 -> double, from the bit fields (independent of the library's conversions).
double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  double v;
  if (exp == 0) v = std::ldexp(double(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(double(mant + 1024), exp - 25);
  return sign ? -v : v;
}

class Cursor {
 public:
  explicit Cursor(const std::vector<uint8_t>& b) : b_(b) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + at_), n);
    at_ += n;
    return s;
  }
  uint64_t at() const { return at_; }

 private:
  void need(uint64_t n) const {
    if (n > b_.size() || at_ > b_.size() - n) throw std::runtime_error("GGUF: truncated at byte " + std::to_string(at_));
  }
  const std::vector<uint8_t>& b_;
  uint64_t at_ = 0;
};

void read_scalar(Cursor& c, uint32_t type, GgufValue& v, bool into_array) {
  auto num = [&](double d, int64_t i, uint64_t u) {
    if (into_array) {
      v.numbers.push_back(d);
      v.ints.push_back(i);
    } else {
      v.number = d, v.integer = i, v.uinteger = u;
    }
  };
  switch (type) {
    case 0: { auto x = c.get<uint8_t>(); num(x, x, x); break; }
    case 1: { auto x = c.get<int8_t>(); num(x, x, uint64_t(x)); break; }
    case 2: { auto x = c.get<uint16_t>(); num(x, x, x); break; }
    case 3: { auto x = c.get<int16_t>(); num(x, x, uint64_t(x)); break; }
    case 4: { auto x = c.get<uint32_t>(); num(x, x, x); break; }
    case 5: { auto x = c.get<int32_t>(); num(x, x, uint64_t(x)); break; }
    case 6: { auto x = c.get<float>(); num(x, 0, 0); break; }  // floats: `number` only
    case 7: {
      auto x = c.get<uint8_t>();
      if (x > 1) throw std::runtime_error("GGUF: a bool that is neither 0 nor 1");
      if (into_array) v.ints.push_back(x); else v.boolean = x;
      break;
    }
    case 8: if (into_array) v.strings.push_back(c.str()); else v.str = c.str(); break;
    case 10: { auto x = c.get<uint64_t>(); num(double(x), int64_t(x), x); break; }
    case 11: { auto x = c.get<int64_t>(); num(double(x), x, uint64_t(x)); break; }
    case 12: { auto x = c.get<double>(); num(x, 0, 0); break; }
    default: throw std::runtime_error("GGUF: unknown value type " + std::to_string(type));
  }
}

uint64_t tensor_bytes(uint32_t type, const std::vector<int64_t>& ne) {
  uint64_t n = 1;
  for (int64_t d : ne) n *= uint64_t(d);
  switch (type) {
    case 0: return n * 4;
    case 1: return n * 2;
    case 8:
      if (ne[0] % 32) throw std::runtime_error("GGUF: Q8_0 rows not a multiple of 32");
      return n / 32 * 34;
    default: throw std::runtime_error("GGUF: tensor type " + std::to_string(type) + " not read by this test reader");
  }
}

}  // namespace

const GgufTensorEntry* GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

GgufFile read_gguf(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("GGUF: cannot open " + path.string());
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Cursor c(b);
  GgufFile f;
  if (c.get<uint32_t>() != 0x46554747u) throw std::runtime_error("GGUF: bad magic");
  f.version = c.get<uint32_t>();
  if (f.version != 3) throw std::runtime_error("GGUF: version " + std::to_string(f.version));
  const uint64_t n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = c.str();
    if (f.kv.count(key)) throw std::runtime_error("GGUF: key " + key + " twice");
    GgufValue v;
    v.type = c.get<uint32_t>();
    if (v.type == 9) {
      v.elem_type = c.get<uint32_t>();
      const uint64_t n = c.get<uint64_t>();
      if (n > b.size()) throw std::runtime_error("GGUF: array longer than the file");
      for (uint64_t k = 0; k < n; ++k) read_scalar(c, v.elem_type, v, true);
    } else {
      read_scalar(c, v.type, v, false);
    }
    f.key_order.push_back(key);
    f.kv[key] = std::move(v);
  }
  if (auto it = f.kv.find("general.alignment"); it != f.kv.end()) {
    if (it->second.type != 4) throw std::runtime_error("GGUF: general.alignment is not a u32");
    f.alignment = uint32_t(it->second.uinteger);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorEntry t;
    t.name = c.str();
    const uint32_t nd = c.get<uint32_t>();
    if (nd < 1 || nd > 4) throw std::runtime_error("GGUF: " + t.name + " has " + std::to_string(nd) + " dims");
    for (uint32_t k = 0; k < nd; ++k) t.ne.push_back(int64_t(c.get<uint64_t>()));
    t.type = c.get<uint32_t>();
    t.offset = c.get<uint64_t>();
    if (t.offset % f.alignment) throw std::runtime_error("GGUF: " + t.name + " offset not aligned");
    f.tensors.push_back(std::move(t));
  }
  f.data_start = (c.at() + f.alignment - 1) / f.alignment * f.alignment;
  for (uint64_t p = c.at(); p < f.data_start && p < b.size(); ++p)
    if (b[p] != 0) throw std::runtime_error("GGUF: non-zero padding before the data");
  for (auto& t : f.tensors) {
    const uint64_t n = tensor_bytes(t.type, t.ne), at = f.data_start + t.offset;
    if (at > b.size() || n > b.size() - at) throw std::runtime_error("GGUF: " + t.name + "'s data runs past the file");
    t.bytes.assign(b.begin() + at, b.begin() + at + n);
  }
  return f;
}

std::vector<double> gguf_values(const GgufTensorEntry& t) {
  std::vector<double> v;
  const uint8_t* p = t.bytes.data();
  if (t.type == 0) {
    for (size_t i = 0; i < t.bytes.size(); i += 4) {
      float x;
      std::memcpy(&x, p + i, 4);
      v.push_back(x);
    }
  } else if (t.type == 1) {
    for (size_t i = 0; i < t.bytes.size(); i += 2) {
      uint16_t h;
      std::memcpy(&h, p + i, 2);
      v.push_back(half_to_double(h));
    }
  } else if (t.type == 8) {
    for (size_t i = 0; i < t.bytes.size(); i += 34) {
      uint16_t h;
      std::memcpy(&h, p + i, 2);
      const double d = half_to_double(h);
      for (int j = 0; j < 32; ++j) v.push_back(d * double(int8_t(p[i + 2 + j])));
    }
  }
  return v;
}

uint16_t ref_half_bits(double v) {
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double a = std::fabs(v);
  if (std::isnan(v)) return 0x7e00;
  if (a == 0) return sign;
  int e = std::ilogb(a);
  if (e < -14) {  // subnormal: units of 2^-24
    const double m = std::nearbyint(std::ldexp(a, 24));
    return uint16_t(sign | uint16_t(m));  // m = 1024 is the smallest normal's bits
  }
  double m = std::nearbyint(std::ldexp(a, 10 - e));  // in [1024, 2048]
  if (m == 2048) m = 1024, ++e;
  if (e + 15 >= 31) return uint16_t(sign | 0x7c00);
  return uint16_t(sign | uint16_t((e + 15) << 10) | uint16_t(m - 1024));
}

void ref_q8_0_block(const float* x, uint16_t& scale_bits, int8_t q[32], bool near_tie[32]) {
  double amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double(x[j])));
  const double d = amax / 127.0;
  scale_bits = ref_half_bits(d);
  for (int j = 0; j < 32; ++j) {
    const double r = d == 0 ? 0.0 : double(x[j]) / d;
    const double away = r < 0 ? -std::floor(-r + 0.5) : std::floor(r + 0.5);
    q[j] = int8_t(away);
    const double frac = std::fabs(r - std::trunc(r));
    near_tie[j] = std::fabs(frac - 0.5) < 1e-4;
  }
}

}  // namespace mgtest
