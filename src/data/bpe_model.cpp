// Reading, validating and writing GPT-2's encoder.json + vocab.bpe.
#include "magellano/data/bpe_model.hpp"

#include <nlohmann/json.hpp>
#include <unordered_map>

#include "magellano/io/atomic_file.hpp"
#include "magellano/data/byte_alphabet.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/input_file.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::data {
namespace fs = std::filesystem;

namespace {

bool looks_special(const std::string& t) {
  return t.size() > 4 && t.compare(0, 2, "<|") == 0 && t.compare(t.size() - 2, 2, "|>") == 0;
}

std::vector<std::string> parse_vocab(const fs::path& path, const std::string& hint) {
  const nlohmann::json j = parse_json(read_whole_file(path, "tokenizer file", hint), "tokenizer file " + path.string(),
                                      " It may be truncated: re-download or retrain it.");
  if (!j.is_object() || j.empty())
    throw Error("tokenizer file " + path.string() +
                " must be a JSON object {\"token\": id, ...}; re-download or retrain it.");
  std::vector<std::string> tokens(j.size());
  std::vector<bool> seen(j.size(), false);
  for (const auto& [key, value] : j.items()) {
    if (!value.is_number_unsigned() || value.get<uint64_t>() >= j.size())
      throw Error("tokenizer file " + path.string() + ": token \"" + excerpt(key) + "\" has id " +
                  json_excerpt(value) + ", but ids must be 0.." + std::to_string(j.size() - 1) + ".");
    const auto id = value.get<size_t>();
    if (seen[id])
      throw Error("tokenizer file " + path.string() + ": id " + std::to_string(id) +
                  " appears twice; ids must be 0.." + std::to_string(j.size() - 1) + " once each.");
    auto bytes = alphabet_to_bytes(key);
    if (!bytes)
      throw Error("tokenizer file " + path.string() + ": token \"" + excerpt(key) +
                  "\" holds characters outside GPT-2's byte alphabet; the file is garbled.");
    seen[id] = true;
    tokens[id] = std::move(*bytes);
  }
  return tokens;
}

}  // namespace

BpeModel load_bpe_files(const fs::path& vocab_json, const fs::path& merges_txt) {
  const std::string hint = " A tokenizer needs " + vocab_json.filename().string() + " and " +
                           merges_txt.filename().string() + ".";
  for (const auto& path : {vocab_json, merges_txt})  // both there (regular files) before the slow part
    InputFile::open(path, "tokenizer file", hint);
  BpeModel m;
  m.tokens = parse_vocab(vocab_json, hint);
  std::unordered_map<std::string, uint32_t> id_of;
  id_of.reserve(m.tokens.size() * 2);
  for (uint32_t i = 0; i < m.tokens.size(); ++i) {
    if (!id_of.emplace(m.tokens[i], i).second)
      throw Error("tokenizer file " + vocab_json.string() + ": token \"" +
                  excerpt(bytes_to_alphabet(m.tokens[i])) + "\" appears twice; the file is garbled.");
  }
  std::vector<bool> reachable(m.tokens.size(), false);
  for (int b = 0; b < 256; ++b) {
    auto it = id_of.find(std::string(1, static_cast<char>(b)));
    if (it == id_of.end())
      throw Error("tokenizer file " + vocab_json.string() + " has no token for byte " +
                  std::to_string(b) + "; a byte-level BPE needs all 256. Re-download or retrain.");
    reachable[it->second] = true;
  }

  const std::string text = read_whole_file(merges_txt, "tokenizer file", hint);
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    auto bad = [&](const std::string& why) {
      return Error("tokenizer file " + merges_txt.string() + " line " + std::to_string(line_no) +
                   ": " + why + "; the file is garbled or truncated. Re-download or retrain it.");
    };
    if (sp == std::string_view::npos || sp == 0 || line.find(' ', sp + 1) != std::string_view::npos ||
        sp + 1 == line.size())
      throw bad("expected \"<left> <right>\"");
    const auto left = alphabet_to_bytes(line.substr(0, sp));
    const auto right = alphabet_to_bytes(line.substr(sp + 1));
    if (!left || !right) throw bad("characters outside GPT-2's byte alphabet");
    const auto a = id_of.find(*left), b = id_of.find(*right), ab = id_of.find(*left + *right);
    if (a == id_of.end() || b == id_of.end() || ab == id_of.end())
      throw bad("merge \"" + excerpt(line) + "\" uses a token missing from " +
                vocab_json.filename().string());
    m.merges.emplace_back(a->second, b->second);
    reachable[ab->second] = true;
  }
  for (uint32_t i = 0; i < m.tokens.size(); ++i) {
    if (reachable[i]) continue;
    if (!looks_special(m.tokens[i]))
      throw Error("tokenizer files disagree: token " + std::to_string(i) + " (\"" +
                  excerpt(bytes_to_alphabet(m.tokens[i])) + "\") of " + vocab_json.string() +
                  " is made by no merge in " + merges_txt.string() +
                  " (truncated?). Re-download or retrain the tokenizer.");
    m.special_ids.push_back(i);
  }
  return m;
}

BpeModel load_bpe_model(const fs::path& dir) {
  if (!fs::is_directory(dir))
    throw Error("tokenizer directory " + dir.string() +
                " does not exist; pass a folder holding tokenizer.json, encoder.json + vocab.bpe or "
                "vocab.json + merges.txt, e.g. one made by `magellano train-tokenizer`.");
  if (fs::exists(dir / "encoder.json") || fs::exists(dir / "vocab.bpe"))
    return load_bpe_files(dir / "encoder.json", dir / "vocab.bpe");
  if (fs::exists(dir / "vocab.json") || fs::exists(dir / "merges.txt"))
    return load_bpe_files(dir / "vocab.json", dir / "merges.txt");
  throw Error("tokenizer directory " + dir.string() +
              " holds no tokenizer.json, encoder.json + vocab.bpe or vocab.json + merges.txt.");
}

std::string encoder_json_text(const BpeModel& model) {
  static const char* hex = "0123456789abcdef";
  std::string out = "{";
  for (size_t id = 0; id < model.tokens.size(); ++id) {
    if (id) out += ", ";
    out += '"';
    const std::string shown = bytes_to_alphabet(model.tokens[id]);
    const auto* p = reinterpret_cast<const unsigned char*>(shown.data());
    for (size_t i = 0; i < shown.size();) {
      uint32_t cp = p[i];
      if (cp >= 0x80) {  // the alphabet is two-byte UTF-8 above ASCII
        cp = ((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
        i += 2;
      } else {
        ++i;
      }
      if (cp == '"' || cp == '\\') {
        out += '\\';
        out += static_cast<char>(cp);
      } else if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else {
        out += "\\u";
        for (int s = 12; s >= 0; s -= 4) out += hex[(cp >> s) & 0xF];
      }
    }
    out += "\": " + std::to_string(id);
  }
  return out + "}";
}

std::string merges_text(const BpeModel& model) {
  std::string out = "#version: 0.2\n";
  for (const auto& [a, b] : model.merges)
    out += bytes_to_alphabet(model.tokens[a]) + " " + bytes_to_alphabet(model.tokens[b]) + "\n";
  return out;
}

void save_bpe_model(const BpeModel& model, const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create tokenizer directory " + dir.string() + ": " + ec.message());
  io::write_file_atomically(dir / "encoder.json", encoder_json_text(model));
  io::write_file_atomically(dir / "vocab.bpe", merges_text(model));
}

}  // namespace magellano::data
