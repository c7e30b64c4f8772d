// `bench chat-template`: host code (no OpenCL): the time to render each real chat template of
// tests/fixtures/chat_templates/ (Qwen2.5, Llama-3.1, Mistral, Gemma, Zephyr, Granite 4.0) with
// the conversations of cases.json, as `magellano serve` does once per chat request; the template
// is parsed once (as at server start). Each render is checked against jinja2's text in cases.json
// first, so a wrong renderer cannot report a time. scripts/chat_template_fixtures.py --bench
// times Python's jinja2 on the same cases for comparison.
// --fixtures DIR: the folder with cases.json (default: tests/fixtures/chat_templates found as
// the tests find it).
#include <fstream>
#include <sstream>

#include "bench.hpp"
#include "magellano/chat/jinja_template.hpp"
#include "magellano/io/project_files.hpp"
#include "magellano/runtime/error.hpp"

namespace magellano::bench {
namespace {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string() + ".");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path fixtures_dir(const Options& opts) {
  if (opts.has("fixtures")) return opts.str("fixtures");
  std::string searched;
#ifdef MAGELLANO_SOURCE_DIR
  const fs::path found = io::find_project_path({"tests/fixtures/chat_templates/cases.json"}, MAGELLANO_SOURCE_DIR, &searched);
#else
  const fs::path found = io::find_project_path({"tests/fixtures/chat_templates/cases.json"}, {}, &searched);
#endif
  if (found.empty()) throw Error("tests/fixtures/chat_templates/cases.json not found (looked in " + searched + "); pass --fixtures DIR.");
  return found.parent_path();
}

std::vector<Result> run_chat_template(Context&, const Peaks&, const Options& opts) {
  const fs::path dir = fixtures_dir(opts);
  const int repeats = repeats_option(opts, 5);
  const ordered_json cases = ordered_json::parse(slurp(dir / "cases.json"))["cases"];
  std::vector<Result> out;
  for (const auto& c : cases) {
    if (!c.contains("template_file") || !c.contains("expected")) continue;
    const std::string file = c["template_file"];
    const chat::jinja::Template t(slurp(dir / "templates" / file));
    const chat::jinja::Dict vars = *chat::jinja::from_json(c["variables"]).dict;
    const std::string want = c["expected"];
    if (t.render(vars) != want) throw Error("chat-template benchmark: " + c["name"].get<std::string>() + " renders other text than jinja2");
    constexpr int kRenders = 200;  // per timed run
    const double s = median_host_seconds(repeats, [&] {
      for (int k = 0; k < kRenders; ++k)
        if (t.render(vars).size() != want.size()) throw Error("chat-template benchmark: the output changed");
    }) / kRenders;
    Result r;
    r.name = "chat_template_render";
    r.host = true;
    r.sizes = {{"case", c["name"]}, {"messages", c["variables"]["messages"].size()}, {"output_bytes", want.size()}};
    r.median_s = s;
    r.repeats = repeats;
    r.gbps = double(want.size()) / s / 1e9;
    r.extra = {{"us_per_render", s * 1e6}};
    out.push_back(r);
  }
  return out;
}

RegisterBench reg{{"chat-template", "Rendering the real chat templates of the test fixtures on the host (µs per render)",
                   {{"fixtures", Key::text, "", "the folder with cases.json (default: tests/fixtures/chat_templates)"}},
                   run_chat_template}};

}  // namespace
}  // namespace magellano::bench
