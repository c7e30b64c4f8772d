#include "magellano/data/batcher.hpp"

#include "magellano/data/splitmix.hpp"
#include "magellano/runtime/error.hpp"
#include "magellano/runtime/json_parse.hpp"

namespace magellano::data {
nlohmann::json to_json(const BatcherState& s) {
  return {{"seed", s.seed}, {"epoch", s.epoch}, {"position", s.position}};
}

BatcherState batcher_state_from_json(const nlohmann::json& j) {
  for (const char* key : {"seed", "epoch", "position"})
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned())
      throw Error(std::string("batcher state needs an unsigned integer \"") + key + "\", got " +
                  (j.is_object() && j.contains(key) ? json_excerpt(j[key]) : std::string("none")));
  return {j["seed"].get<uint64_t>(), j["epoch"].get<uint64_t>(), j["position"].get<uint64_t>()};
}

Batcher::Batcher(TokenFile file, size_t batch, size_t seq_len, uint64_t seed)
    : file_(std::move(file)), batch_(batch), seq_len_(seq_len) {
  if (batch == 0 || seq_len == 0) throw Error("batch size and sequence length must be positive.");
  if (file_.size() < seq_len + 1)
    throw Error("token file " + file_.path().string() + " has " + std::to_string(file_.size()) +
                " tokens, fewer than one window of seq_len + 1 = " + std::to_string(seq_len + 1) +
                ". Use a shorter sequence length or more text.");
  windows_ = (file_.size() - 1) / seq_len;
  if (windows_ > 0xFFFFFFFFull)
    throw Error("token file " + file_.path().string() + " has more than 2^32 windows of length " +
                std::to_string(seq_len) + "; use a longer sequence length.");
  state_.seed = seed;
  shuffle_epoch();
}

void Batcher::shuffle_epoch() {
  order_.resize(windows_);
  for (uint64_t i = 0; i < windows_; ++i) order_[i] = static_cast<uint32_t>(i);
  SplitMix64 rng{state_.seed ^ (0xD1B54A32D192ED03ull * (state_.epoch + 1))};
  for (uint64_t i = windows_; i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
}

void Batcher::next(std::span<int32_t> out) {
  const size_t row = seq_len_ + 1;
  if (out.size() != batch_ * row)
    throw Error("batch buffer holds " + std::to_string(out.size()) + " values; expected (B, L+1) = " +
                std::to_string(batch_ * row));
  for (size_t b = 0; b < batch_; ++b) {
    if (state_.position == windows_) {
      ++state_.epoch;
      state_.position = 0;
      shuffle_epoch();
    }
    const uint64_t window = order_[state_.position++];
    file_.copy(window * seq_len_, row, out.data() + b * row);
  }
}

std::vector<int32_t> Batcher::next() {
  std::vector<int32_t> out(batch_ * (seq_len_ + 1));
  next(out);
  return out;
}

void Batcher::restore(const BatcherState& s) {
  if (s.position > windows_)
    throw Error("batcher state position " + std::to_string(s.position) + " is past the " +
                std::to_string(windows_) + " windows of " + file_.path().string() +
                " at seq_len " + std::to_string(seq_len_) + ": the checkpoint is for other data.");
  const bool reshuffle = s.seed != state_.seed || s.epoch != state_.epoch;
  state_ = s;
  if (reshuffle) shuffle_epoch();
}

double Batcher::epochs() const {
  return static_cast<double>(state_.epoch) +
         static_cast<double>(state_.position) / static_cast<double>(windows_);
}

}  // namespace magellano::data
