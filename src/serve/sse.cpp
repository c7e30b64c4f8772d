#include "magellano/serve/sse.hpp"

#include "magellano/serve/openai_json.hpp"

namespace magellano::serve {

std::string sse_event(const nlohmann::json& data) { return "data: " + dump(data) + "\n\n"; }

}  // namespace magellano::serve
