// SafetensorsSet: a checkpoint's weights as one file or as Hugging Face shards with an index.
// The shards read back as the tensors written, the single file wins over an index (as in
// transformers), and every broken set is one clear line naming what is wrong.
#include <cstring>
#include <fstream>

#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/io/json_file.hpp"
#include "magellano/io/safetensors_set.hpp"
#include "sharded_weights.hpp"
#include "temp_dir.hpp"

using namespace magellano::io;
using mgtest::expect_error;
using mgtest::NamedTensors;
using mgtest::shard_name;
namespace fs = std::filesystem;

namespace {

StTensor f32(std::vector<int64_t> shape, float first) {
  StTensor t{StDType::F32, shape, {}};
  std::vector<float> v(st_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = first + float(i);
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

NamedTensors seven() {  // odd count and sizes, one F16
  NamedTensors t;
  for (int i = 0; i < 6; ++i) t.emplace_back("layers." + std::to_string(i) + ".w", f32({i + 1, 3}, 10.0f * i));
  t.emplace_back("half", StTensor{StDType::F16, {2}, {0x00, 0x3c, 0x00, 0xc0}});  // 1, -2
  return t;
}

void write_index(const fs::path& dir, const nlohmann::json& weight_map) {
  write_json_atomically(dir / kSafetensorsIndex, {{"metadata", {{"total_size", 1}}}, {"weight_map", weight_map}});
}
void write_text(const fs::path& file, const std::string& text) { std::ofstream(file, std::ios::binary) << text; }

}  // namespace

TEST(SafetensorsSet, ShardsReadBackAsWritten) {
  mgtest::TempDir d;
  const NamedTensors all = seven();
  mgtest::write_sharded_safetensors(d.path(), all, 3);
  const SafetensorsSet set = SafetensorsSet::open(d.path());
  EXPECT_TRUE(set.sharded());
  EXPECT_EQ(set.path(), d.path() / kSafetensorsIndex);
  ASSERT_EQ(set.files().size(), 3u);
  std::vector<std::string> names;
  for (const auto& [n, t] : all) names.push_back(n);
  EXPECT_EQ(set.names(), names);  // shard by shard, each in data order
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [name, t] = all[i];
    EXPECT_TRUE(set.contains(name));
    EXPECT_EQ(set.reader(name).path(), d.path() / shard_name(int(i / 3) + 1, 3)) << name;
    EXPECT_EQ(set.shape(name), t.shape);
    EXPECT_EQ(set.dtype(name), t.dtype);
    EXPECT_EQ(set.read(name).bytes, t.bytes);
    std::vector<uint8_t> into(t.bytes.size());
    set.read_into(name, into.data(), into.size());
    EXPECT_EQ(into, t.bytes);
  }
  EXPECT_EQ(set.read_f32("half"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_FALSE(set.contains("nope"));
  expect_error([&] { set.reader("nope"); }, (d.path() / kSafetensorsIndex).string() + " lists no tensor 'nope'.");
  EXPECT_EQ(set.metadata().at("format"), "pt");
  uint64_t bytes = 0;
  for (int k = 1; k <= 3; ++k) bytes += fs::file_size(d.path() / shard_name(k, 3));
  EXPECT_EQ(set.total_bytes(), bytes);
  EXPECT_TRUE(SafetensorsSet::present(d.path()));
}

TEST(SafetensorsSet, OneFileAndTheFolderOfOneFile) {
  mgtest::TempDir d;
  write_safetensors(d.path() / kSafetensorsFile, seven());
  for (const fs::path& p : {d.path(), d.path() / kSafetensorsFile}) {
    const SafetensorsSet set = SafetensorsSet::open(p);
    EXPECT_FALSE(set.sharded());
    EXPECT_EQ(set.path(), d.path() / kSafetensorsFile);
    EXPECT_EQ(set.names().size(), 7u);
    EXPECT_EQ(set.read("layers.2.w").bytes, seven()[2].second.bytes);
    // A name it lacks: the file's own message.
    expect_error([&] { set.shape("nope"); }, "has no tensor 'nope'");
  }
}

// transformers' from_pretrained looks for model.safetensors before the index: so do we.
TEST(SafetensorsSet, TheSingleFileWinsOverAnIndex) {
  mgtest::TempDir d;
  mgtest::write_sharded_safetensors(d.path(), seven(), 2);
  write_safetensors(d.path() / kSafetensorsFile, {{"layers.0.w", f32({1, 3}, 99.0f)}});
  const SafetensorsSet set = SafetensorsSet::open(d.path());
  EXPECT_FALSE(set.sharded());
  EXPECT_EQ(set.names(), std::vector<std::string>{"layers.0.w"});
  EXPECT_EQ(set.read_f32("layers.0.w")[0], 99.0f);
}

// A shard may hold tensors the index does not list: they are not part of the set.
TEST(SafetensorsSet, TheIndexDecidesWhatIsInTheSet) {
  mgtest::TempDir d;
  write_safetensors(d.path() / "a.safetensors", {{"x", f32({2}, 1.0f)}, {"extra", f32({1}, 5.0f)}});
  write_safetensors(d.path() / "sub.safetensors", {{"y", f32({2}, 3.0f)}});
  write_index(d.path(), {{"y", "sub.safetensors"}, {"x", "./a.safetensors"}});
  const SafetensorsSet set = SafetensorsSet::open(d.path());
  EXPECT_EQ(set.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_FALSE(set.contains("extra"));
  EXPECT_EQ(set.read_f32("y"), (std::vector<float>{3.0f, 4.0f}));
}

TEST(SafetensorsSet, BrokenIndexesAreOneClearLine) {
  mgtest::TempDir d;
  const std::string index = (d.path() / kSafetensorsIndex).string();
  const auto open_with = [&](const std::string& text) {
    write_text(d.path() / kSafetensorsIndex, text);
    return [&] { SafetensorsSet::open(d.path()); };
  };
  expect_error([&] { SafetensorsSet::open(d.path()); },
               d.path().string() + " has no weights: neither model.safetensors nor model.safetensors.index.json");
  EXPECT_FALSE(SafetensorsSet::present(d.path()));
  expect_error(open_with("{\"weight_map\": {"), "safetensors index " + index + " is not valid JSON: parse error");
  expect_error(open_with("[1, 2]"), "safetensors index " + index + ": is [1,2], not a JSON object.");
  expect_error(open_with(R"({"metadata": {"total_size": 8}})"), index + ": has no \"weight_map\".");
  expect_error(open_with(R"({"weight_map": ["a"]})"), "\"weight_map\" is [\"a\"], not an object.");
  expect_error(open_with(R"({"weight_map": {}})"), "\"weight_map\" lists no tensors.");
  expect_error(open_with(R"({"weight_map": {"w": 3}})"), "tensor \"w\" maps to 3, not a file name.");
  expect_error(open_with(R"({"weight_map": {"w": "a", "w": "b"}})"), "has the key \"w\" twice");
  for (const char* escape : {"../model-00001-of-00001.safetensors", "/etc/passwd", "shards/../../x.safetensors",
                             "", ".", "shards/"})
    expect_error(open_with(nlohmann::json{{"weight_map", {{"w", escape}}}}.dump()),
                 "maps to shard " + nlohmann::json(escape).dump() +
                     ", which is not a file inside the checkpoint folder (absolute paths and \"..\" are refused).");
}

TEST(SafetensorsSet, BrokenShardsAreOneClearLine) {
  mgtest::TempDir d;
  const std::string index = (d.path() / kSafetensorsIndex).string();
  mgtest::write_sharded_safetensors(d.path(), seven(), 3);
  // A shard missing.
  fs::remove(d.path() / shard_name(2, 3));
  expect_error([&] { SafetensorsSet::open(d.path()); },
               "safetensors index " + index + " names the shard " + shard_name(2, 3) + ", which is missing from " +
                   d.path().string() + ". Download every shard the index lists.");
  // A shard that is not safetensors: the reader's own message, naming the shard.
  write_text(d.path() / shard_name(2, 3), "not a safetensors file");
  expect_error([&] { SafetensorsSet::open(d.path()); }, "safetensors file " + (d.path() / shard_name(2, 3)).string());
  // A tensor listed in the index but absent from its shard.
  mgtest::write_sharded_safetensors(d.path(), seven(), 3);
  write_index(d.path(), {{"layers.0.w", shard_name(1, 3)}, {"layers.5.w", shard_name(1, 3)}});
  expect_error([&] { SafetensorsSet::open(d.path()); },
               "safetensors index " + index + " places tensor 'layers.5.w' in " + shard_name(1, 3) +
                   ", which has no such tensor: the index and the shards disagree. Download them again.");
}

TEST(SafetensorsSet, IndexParserAcceptsWhatTransformersWrites) {
  // As save_pretrained writes it (metadata first, names sorted, two shards).
  const auto map = parse_safetensors_index(R"({
  "metadata": {"total_size": 6525276160},
  "weight_map": {
    "backbone.embeddings.weight": "model-00001-of-00002.safetensors",
    "backbone.layers.0.mixer.A_log": "model-00001-of-00002.safetensors",
    "lm_head.weight": "model-00002-of-00002.safetensors"
  }
})", "index");
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.at("lm_head.weight"), "model-00002-of-00002.safetensors");
}
