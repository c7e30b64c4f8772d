#include "magellano/train/evaluate.hpp"

#include <algorithm>
#include <cmath>

#include "magellano/autograd/tape.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::train {
namespace {

// Tokens per chunk: seq_len, or seq_len + 1 (a training window, seq_len inputs) when rows may be
// blank infilling, whose layout depends on the number of inputs.
int64_t chunk_tokens(int64_t seq_len, const data::ObjectiveConfig& objective) {
  return seq_len + (objective.uses(data::Objective::blank_infilling) ? 1 : 0);
}

// Chunks start every seq_len tokens; one that would hold a single token predicts nothing and is
// not counted (with seq_len + 1 tokens a chunk shares its first token with the previous one's last).
int64_t chunk_count(size_t tokens, int64_t seq_len, const data::ObjectiveConfig& objective) {
  const int64_t overlap = chunk_tokens(seq_len, objective) - seq_len;
  return (static_cast<int64_t>(tokens) - overlap + seq_len - 1) / seq_len;
}

}  // namespace

EvalResult evaluate(const nn::Model& model, std::span<const int32_t> tokens, int64_t seq_len,
                    int64_t batch, int64_t max_chunks, const data::ObjectiveConfig& objective,
                    int64_t first_chunk) {
  if (seq_len < 2) throw Error("evaluate: seq-len must be at least 2.");
  if (tokens.size() < 2) throw Error("evaluate: at least 2 tokens are needed to predict one.");
  autograd::NoGradScope no_grad;
  Context& ctx = model.parameters().front().tensor.ctx();
  const int64_t n = static_cast<int64_t>(tokens.size()), span = chunk_tokens(seq_len, objective);
  int64_t chunks = chunk_count(tokens.size(), seq_len, objective);
  if (max_chunks > 0) chunks = std::min(chunks, max_chunks);
  double loss_sum = 0;
  int64_t predicted = 0;
  // Chunks of the same length go together, `batch` at a time (only the last may be shorter).
  for (int64_t c0 = 0; c0 < chunks;) {
    const int64_t begin = c0 * seq_len;
    const int64_t len = std::min<int64_t>(span, n - begin);
    int64_t rows = 1;
    if (len == span)
      while (rows < batch && c0 + rows < chunks && (c0 + rows) * seq_len + span <= n) ++rows;
    if (len >= 2) {
      std::vector<int32_t> x(rows * (len - 1)), y(rows * (len - 1)), ids(2 * rows * (len - 1)), prefix;
      int64_t counted = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const auto row = static_cast<size_t>(len - 1);
        const std::span<int32_t> xr = std::span<int32_t>(x).subspan(r * row, row), yr = std::span<int32_t>(y).subspan(r * row, row);
        const std::span<int32_t> ir = std::span<int32_t>(ids).subspan(2 * r * row, 2 * row);
        const std::span<const int32_t> chunk = tokens.subspan(begin + r * seq_len, row + 1);
        const auto draw = static_cast<uint64_t>(first_chunk + c0 + r);
        // A chunk too short for blank infilling ([MASK] [START] token) predicts nothing.
        if (row < 3 && data::row_objective(objective, 0, draw) == data::Objective::blank_infilling) {
          std::copy(chunk.begin(), chunk.end() - 1, xr.begin());
          for (size_t t = 0; t < row; ++t) ir[2 * t] = static_cast<int32_t>(t), ir[2 * t + 1] = 0;
          std::fill(yr.begin(), yr.end(), data::kIgnoreTarget);
          prefix.push_back(static_cast<int32_t>(row));
          continue;
        }
        prefix.push_back(data::make_row(objective, model.spec().vocab_size, chunk, 0, draw, xr, yr, ir));
        counted += std::count_if(yr.begin(), yr.end(), [](int32_t t) { return t != data::kIgnoreTarget; });
      }
      if (!objective.mixed() && objective.objective == data::Objective::causal) prefix.clear();
      if (counted == 0) {  // nothing to predict (a mean over no targets is not a number)
        c0 += rows;
        continue;
      }
      const Shape s{rows, len - 1};
      const Tensor pt = prefix.empty() ? Tensor() : Tensor::from_host_i32(ctx, Shape{rows}, prefix);
      // GLM 2D ids for a model whose attention reads them (positions = (t, 0) would be the same).
      const Tensor it = model.spec().attention.rope_2d ? Tensor::from_host_i32(ctx, Shape{rows, len - 1, 2}, ids) : Tensor();
      const auto out = model.loss(Tensor::from_host_i32(ctx, s, x), Tensor::from_host_i32(ctx, s, y), pt, it);
      loss_sum += static_cast<double>(out.ce.item()) * counted;  // ce is the mean over the counted targets
      predicted += counted;
    }
    c0 += rows;
  }
  EvalResult r;
  r.tokens = predicted;
  r.loss = predicted ? loss_sum / predicted : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

EvalResult evaluate(const nn::Model& model, std::span<const int32_t> tokens, int64_t seq_len, int64_t batch,
                    int64_t max_chunks, const data::ObjectiveConfig& objective, Collective& ranks) {
  if (seq_len < 2) throw Error("evaluate: seq-len must be at least 2.");
  if (tokens.size() < 2) throw Error("evaluate: at least 2 tokens are needed to predict one.");
  int64_t chunks = chunk_count(tokens.size(), seq_len, objective);
  if (max_chunks > 0) chunks = std::min(chunks, max_chunks);
  const int64_t share = (chunks + ranks.size() - 1) / ranks.size();
  const int64_t first = std::min(chunks, share * ranks.rank()), last = std::min(chunks, first + share);
  EvalResult mine;
  const auto begin = static_cast<size_t>(first * seq_len);
  // A share of one chunk holding a single token (the sequence's end) predicts nothing.
  if (last > first && tokens.size() - begin >= 2)
    mine = evaluate(model, tokens.subspan(begin), seq_len, batch, last - first, objective, first);
  EvalResult r;
  r.tokens = static_cast<int64_t>(ranks.sum(static_cast<double>(mine.tokens)));
  r.loss = r.tokens ? ranks.sum(mine.loss * static_cast<double>(mine.tokens)) / static_cast<double>(r.tokens) : 0.0;
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace magellano::train
