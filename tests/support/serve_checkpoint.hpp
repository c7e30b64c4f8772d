// The model the `magellano serve` tests run: random weights, Mamba + attention + MoE blocks
// ("MAE"), width 16, a 300-id GPT-2-style tokenizer trained on kServeText, so a server starts and
// answers in seconds on PoCL.
#pragma once
#include <filesystem>

namespace mgtest {

extern const char* const kServeText;

// Writes config.json, model.safetensors, vocab.json and merges.txt into dir (created).
void write_serve_checkpoint(const std::filesystem::path& dir);

}  // namespace mgtest
