// Small helpers for tests that check error messages and CLI output by fragment.
#pragma once
#include <functional>
#include <string>

#include "magellano/runtime/error.hpp"

namespace mgtest {

// Whether `text` contains `fragment`.
inline bool has(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

// The message of the magellano::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const magellano::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace mgtest
