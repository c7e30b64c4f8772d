// Errors a user can act on: every OpenCL / CLBlast failure names the call, the code's name and
// a hint. Bad input raises magellano::Error with one line that says what is wrong and what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace magellano {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
