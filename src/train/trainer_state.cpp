#include "magellano/train/trainer_state.hpp"

#include <limits>

#include "magellano/io/json_file.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace {

using nlohmann::json;

class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), source_(source) {
    if (!j.is_object())
      bad("is a JSON " + std::string(j.type_name()) + ", not an object");
  }

  [[noreturn]] void bad(const std::string& what) const {
    throw Error("trainer state " + source_ + " " + what +
                "; the checkpoint is garbled or not written by `magellano train`.");
  }

  const json* find(const std::string& key, bool required) const {
    const auto it = j_.find(key);
    if (it != j_.end()) return &*it;
    if (required) bad("has no \"" + key + "\"");
    return nullptr;
  }

  // An integer >= 0 that fits int64 (counts: steps, tokens).
  int64_t count(const std::string& key, bool required) const {
    const json* v = find(key, required);
    if (!v) return 0;
    const bool ok = v->is_number_unsigned()
                        ? v->get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max())
                        : v->is_number_integer() && v->get<int64_t>() >= 0;
    if (!ok) bad("has \"" + key + "\" " + json_excerpt(*v) + "; it must be an integer >= 0");
    return v->get<int64_t>();
  }

 private:
  const json& j_;
  const std::string source_;
};

}  // namespace

TrainerState parse_trainer_state(const json& j, const std::string& source) {
  const Fields f(j, source);
  const json* format = f.find("format", true);
  if (*format != kTrainerStateFormat)
    f.bad("has \"format\" " + json_excerpt(*format) + ", not \"" + kTrainerStateFormat + "\"");
  TrainerState s;
  s.step = f.count("step", true);
  s.optimizer_steps = f.count("optimizer_steps", true);
  s.tokens = f.count("tokens", false);
  try {
    s.batcher = data::batcher_state_from_json(*f.find("batcher", true));
  } catch (const Error& e) {
    f.bad(std::string("has a bad \"batcher\" (") + e.what() + ")");
  }
  if (const json* ls = f.find("loss_scaler", false)) {
    const Fields l(*ls, source + " \"loss_scaler\"");
    const json* scale = l.find("scale", true);
    if (!scale->is_number() || !(scale->get<double>() >= 1.0 && scale->get<double>() <= 1e30))
      l.bad("has \"scale\" " + json_excerpt(*scale) + "; it must be a number in [1, 1e30]");
    l.count("clean_steps", true);
    l.count("skipped_steps", true);
    s.loss_scaler = *ls;
  }
  if (const json* init = f.find("init_from", false)) {
    if (!init->is_string() || init->get<std::string>().empty())
      f.bad("has \"init_from\" " + json_excerpt(*init) + "; it must be the path of a checkpoint");
    s.init_from = init->get<std::string>();
  }
  if (const json* id = f.find("run_id", false)) {
    if (!id->is_string() || id->get<std::string>().empty() || id->get<std::string>().size() > 256)
      f.bad("has \"run_id\" " + json_excerpt(*id) + "; it must be a run id string");
    s.run_id = id->get<std::string>();
  }
  if (const json* dp = f.find("data_parallel", false)) {
    const Fields d(*dp, source + " \"data_parallel\"");
    s.ranks = d.count("ranks", true);
    if (s.ranks < 1) d.bad("has \"ranks\" 0; it must be at least 1");
    if (d.count("batch_per_rank", true) < 1) d.bad("has \"batch_per_rank\" 0; it must be at least 1");
  }
  return s;
}

TrainerState read_trainer_state(const std::filesystem::path& checkpoint_dir) {
  const auto path = checkpoint_dir / "trainer_state.json";
  return parse_trainer_state(io::read_json(path, "trainer state"), path.string());
}

}  // namespace magellano::train
