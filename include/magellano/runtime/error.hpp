// Errors a user can act on: every OpenCL / CLBlast failure names the call, the code's name and
// a hint. Bad input raises magellano::Error with one line that says what is wrong and what to do.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace magellano {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A user's value as it may appear inside an error line: control characters written as escapes
// (a newline as the two characters \n, byte 1 as \x01) so the message stays one line, and text
// beyond max_chars cut at a UTF-8 character boundary with "... (N bytes)" appended, so a 1 MB key
// or value never floods the terminal.
std::string excerpt(std::string_view text, size_t max_chars = 80);

// "CL_OUT_OF_RESOURCES" for -5; "CL_UNKNOWN_ERROR(-1234)" for codes OpenCL does not define.
std::string cl_error_name(int code);
// CLBlast status codes: OpenCL's names where they coincide, CLBlast's own otherwise.
std::string clblast_status_name(int code);
// A suggestion for what the user can do about an OpenCL error code (may be empty).
std::string cl_error_hint(int code);

// Throws Error("<call> failed: <NAME> (<code>). <hint>") when code != 0.
void check_cl(int code, const char* call, const std::string& context = "");
void check_clblast(int status, const char* call, const std::string& context = "");

}  // namespace magellano
