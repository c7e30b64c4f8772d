// GLM's autoregressive blank infilling (Du et al. 2022) as a transform of one training window.
//
// A window of L + 1 tokens becomes L inputs x and L targets y:
//   source  = window[0, S) with S = L - 2·m (m spans): every span costs one [MASK] in part A and
//             one [START] in part B on top of its own tokens, so |A| + |B| = S + 2·m = L exactly;
//             the window's last 2·m + 1 tokens are not used.
//   part A  = the source with each span replaced by one [MASK]                    (|A| = S - K + m)
//   part B  = the spans in a random order, each as [START] s_1 .. s_k             (|B| = K + m)
//   x       = A ++ B;  y = ignore (-100) over A, and over span i's [START] s_1 .. s_k the
//             targets s_1 .. s_k [END] (the [END] is predicted, never an input).
// A is the bidirectional prefix (prefix length P = |A|, as prefix-LM's); the loss covers B only.
// Positions (model.infill_positions): sequential 0 .. L - 1 over A ++ B (rotary as in any
// window), or GLM's 2D ids (glm2d): a position id and a block id per input, written by
// lay_out_infill: part A (t, 0) for t < |A|; span i's [START] s_1 .. s_k in part B (the index of
// its [MASK] in A, 1 .. k + 1). With rotary attention the position id rotates each head's first
// half and the block id its second half (ops::rope_2d); Mamba layers read no positions.
//
// Spans (mode spans): lengths k = max(1, Poisson(λ)) drawn one by one while the masked total K is
// below round(ratio · S) for the S that one more span would leave (at least one span); the last
// length is cut to hit that total. The spans go into distinct gaps between the S - K unmasked
// tokens (so two spans never touch), gaps uniform without replacement.
// Document (mode document): one span of k = round(u · S) tokens, u uniform in [0.5, 1] (GLM's
// document-level objective), S = L - 2, at a uniform start.
// Single (mode single): one span of k = max(1, Poisson(λ)) tokens (at most S / 2), S = L - 2, at a
// uniform start. With sequential positions (below) a [START] does not say which [MASK] it fills
// when there are several (GLM's 2D positions do); with one blank per window there is no doubt.
// Everything comes from a splitmix64 stream of (seed, draw), draw the window's index in the
// batcher's stream (as prefix-LM's prefixes), so a resumed batcher gives the same spans.
//
// Special tokens: the model's top three ids, [MASK] = V - 3, [START] = V - 2, [END] = V - 1 (V =
// model.vocab_size): appended after a tokenizer whose vocabulary has at most V - 3 ids.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace magellano::data {

enum class InfillMode { spans, document, single };
const char* to_string(InfillMode m);  // "spans", "document", "single"
enum class InfillPositions { sequential, glm2d };
const char* to_string(InfillPositions p);  // "sequential", "glm2d"

struct InfillConfig {
  InfillMode mode = InfillMode::spans;
  double ratio = 0.15;      // spans: masked fraction of the source, in (0, 0.5]
  double span_lambda = 3.0;  // spans, single: Poisson mean of a span's length, in (0, 32]
  bool operator==(const InfillConfig&) const = default;
};

struct InfillTokens {
  int32_t mask, start, end;
};
// [MASK], [START], [END] of a model with vocab_size ids; throws magellano::Error below 4 ids.
InfillTokens infill_tokens(int64_t vocab_size);
// Throws magellano::Error (naming `what`, e.g. a token file) when a vocabulary of tokenizer_vocab
// ids reaches the special ids of a model with vocab_size ids.
void require_infill_room(uint64_t tokenizer_vocab, int64_t vocab_size, const std::string& what);

struct InfillSpan {
  int32_t start = 0, length = 0;  // source tokens [start, start + length)
  bool operator==(const InfillSpan&) const = default;
};

struct InfillPlan {
  int32_t source = 0;               // S: source tokens used
  std::vector<InfillSpan> spans;    // (m) by ascending start, disjoint, not adjacent
  std::vector<int32_t> order;       // (m) part B's order: indices into spans
};

// The plan for a window of L inputs (L >= 3; throws magellano::Error otherwise).
InfillPlan plan_infill(const InfillConfig& c, int64_t len, uint64_t seed, uint64_t draw);

// Writes x and y (L each) from the plan and the window's first plan.source tokens; returns P = |A|.
// ids (2·L, or empty: not written): GLM's 2D ids (position, block) of each input, as above.
int32_t lay_out_infill(const InfillPlan& plan, std::span<const int32_t> window, InfillTokens tokens,
                       std::span<int32_t> x, std::span<int32_t> y, std::span<int32_t> ids = {});

}  // namespace magellano::data
