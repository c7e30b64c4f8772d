// Small helpers for tests that check error messages and CLI output by fragment.
#pragma once
#include <gtest/gtest.h>

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

// A test failure unless f throws a magellano::Error whose message contains `fragment`.
inline void expect_error(const std::function<void()>& f, const std::string& fragment) {
  const std::string message = error_of(f);
  EXPECT_TRUE(has(message, fragment)) << "expected an error mentioning '" << fragment << "', got: " << message;
}

}  // namespace mgtest
