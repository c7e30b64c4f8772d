// Finding the files that ship with the project but not inside a binary: configs/*.json,
// tests/fixtures/, and the shared data folder (tokenizers and corpora, ../shared/data beside a
// checkout). The CLI (`bench`'s default configs and data) and the test binaries look them up
// the same way, so both also run from a bundle copied to another machine.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace magellano::io {

// The folders looked under, in order: $MAGELLANO_SOURCE_DIR when set, the current folder, the
// running executable's folder and the two above it (build/ and build/tests/ inside a checkout,
// or a bundle with configs/ beside or above the binaries), then `built_from`: the source tree
// the executable was built from, compiled in as the last resort (empty: none).
std::vector<std::filesystem::path> project_roots(const std::filesystem::path& built_from);

// The first root / candidate that exists (e.g. candidates {"configs/tiny.json"}), trying every
// candidate under one root before the next root; an empty path when none exists. `searched`,
// when given, receives the folders tried (each candidate's folder under each root), comma-
// separated, for an error message.
std::filesystem::path find_project_path(const std::vector<std::string>& candidates,
                                        const std::filesystem::path& built_from,
                                        std::string* searched = nullptr);

// The shared data folder: $MAGELLANO_SHARED_DATA when set (as given, even if missing), else the
// first shared/data or ../shared/data under project_roots(built_from); empty when none exists.
std::filesystem::path find_shared_data(const std::filesystem::path& built_from);

}  // namespace magellano::io
