// An error the server answers with, in OpenAI's JSON shape:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens" | null, "code": ... | null}}
// status is the HTTP status (400 bad request, 401 no or wrong API key, 404 unknown model or
// route, 413 body or prompt too large, 429 queue full, 500 a device failure). Thrown by request
// parsing and the scheduler; the server turns it into the response.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace magellano::serve {

struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;  // param / code: "" = null
  ApiError(int status, std::string message, std::string param = "", std::string code = "",
           std::string type = "invalid_request_error")
      : std::runtime_error(std::move(message)), status(status), type(std::move(type)),
        param(std::move(param)), code(std::move(code)) {}
  nlohmann::json to_json() const;  // the whole body: {"error": {...}}
};

}  // namespace magellano::serve
