// trainer_state.json (train/trainer_state.hpp): what `train --resume` reads is checked field by
// field before anything is loaded. A string, negative or missing step used to give the JSON
// library's raw text or be accepted (a negative step resumed with exit 0).
#include <gtest/gtest.h>

#include <fstream>

#include "error_text.hpp"
#include "magellano/train/trainer_state.hpp"
#include "temp_dir.hpp"

using magellano::train::parse_trainer_state;
using magellano::train::read_trainer_state;
using magellano::train::TrainerState;
using mgtest::error_of;
using mgtest::has;
using nlohmann::json;

namespace {

json valid() {
  return {{"format", "magellano-checkpoint-1"}, {"step", 6}, {"optimizer_steps", 5}, {"tokens", 192},
          {"batcher", {{"seed", 1234u}, {"epoch", 1u}, {"position", 2u}}}};  // unsigned, as parsed
}

// parse_trainer_state(j) fails with one line that names the file and contains `fragment`.
void expect_refused(const json& j, const std::string& fragment) {
  const std::string msg = error_of([&] { parse_trainer_state(j, "ck/trainer_state.json"); });
  EXPECT_TRUE(has(msg, "trainer state ck/trainer_state.json ")) << msg;
  EXPECT_TRUE(has(msg, fragment)) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u) << msg;
}

}  // namespace

TEST(TrainerState, ValidStatesParse) {
  TrainerState s = parse_trainer_state(valid(), "x");
  EXPECT_EQ(s.step, 6);
  EXPECT_EQ(s.optimizer_steps, 5);
  EXPECT_EQ(s.tokens, 192);
  EXPECT_EQ(s.batcher, (magellano::data::BatcherState{1234, 1, 2}));
  EXPECT_TRUE(s.loss_scaler.is_null());
  EXPECT_FALSE(s.init_from);

  json j = valid();
  j.erase("tokens");  // optional: 0
  j["loss_scaler"] = {{"scale", 32768.0}, {"clean_steps", 3}, {"skipped_steps", 1}};
  j["init_from"] = "/runs/base/step-00000100";
  j["step"] = 0;
  s = parse_trainer_state(j, "x");
  EXPECT_EQ(s.tokens, 0);
  EXPECT_EQ(s.step, 0);
  EXPECT_EQ(s.loss_scaler["scale"], 32768.0);
  EXPECT_EQ(s.init_from, "/runs/base/step-00000100");
}

TEST(TrainerState, EveryFieldIsChecked) {
  const auto with = [](const char* key, json v) {
    json j = valid();
    j[key] = std::move(v);
    return j;
  };
  const auto without = [](const char* key) {
    json j = valid();
    j.erase(key);
    return j;
  };
  expect_refused(with("step", "6"), "has \"step\" \"6\"; it must be an integer >= 0");
  expect_refused(with("step", -5), "has \"step\" -5; it must be an integer >= 0");
  expect_refused(with("step", 6.5), "has \"step\" 6.5");
  expect_refused(with("step", 18446744073709551615ull), "has \"step\" 18446744073709551615");
  expect_refused(with("step", std::string(100000, '9')), "(100002 bytes)");
  expect_refused(without("step"), "has no \"step\"");
  expect_refused(without("optimizer_steps"), "has no \"optimizer_steps\"");
  expect_refused(with("tokens", nullptr), "has \"tokens\" null");
  expect_refused(without("format"), "has no \"format\"");
  expect_refused(with("format", 1), "has \"format\" 1, not \"magellano-checkpoint-1\"");
  expect_refused(without("batcher"), "has no \"batcher\"");
  expect_refused(with("batcher", {{"seed", 1u}, {"epoch", -1}, {"position", 0u}}),
                 "bad \"batcher\" (batcher state needs an unsigned integer \"epoch\", got -1)");
  expect_refused(with("loss_scaler", {{"scale", 0.5}, {"clean_steps", 0}, {"skipped_steps", 0}}),
                 "\"scale\" 0.5; it must be a number in [1, 1e30]");
  expect_refused(with("loss_scaler", {{"scale", 2.0}, {"skipped_steps", 0}}), "has no \"clean_steps\"");
  expect_refused(with("loss_scaler", 3), "\"loss_scaler\" is a JSON number, not an object");
  expect_refused(with("init_from", 7), "has \"init_from\" 7; it must be the path of a checkpoint");
  expect_refused(json::array(), "is a JSON array, not an object");
}

TEST(TrainerState, ReadNamesTheFile) {
  mgtest::TempDir dir;
  std::string msg = error_of([&] { read_trainer_state(dir.path()); });
  EXPECT_TRUE(has(msg, "trainer state " + (dir / "trainer_state.json").string() + " is missing")) << msg;
  std::ofstream(dir / "trainer_state.json") << "{\"format\": \"magellano-checkpoint-1\", \"step\": " +
                                                   std::string(100000, '[') + std::string(100000, ']') + "}";
  msg = error_of([&] { read_trainer_state(dir.path()); });
  EXPECT_TRUE(has(msg, "nests arrays and objects more than 64 deep")) << msg;
  std::ofstream(dir / "trainer_state.json", std::ios::trunc) << valid().dump();
  EXPECT_EQ(read_trainer_state(dir.path()).step, 6);
}
