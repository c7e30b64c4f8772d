// GEMM tuning files (ops/gemm_tuning.hpp): which file applies to which device, the override
// variable, bad files; and `magellano tune-gemm`'s bad-input paths.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "magellano/ops/gemm_tuning.hpp"
#include "magellano/runtime/error.hpp"
#include "temp_dir.hpp"
#include "error_text.hpp"

namespace ops = magellano::ops;
using mgtest::has;
using magellano::DeviceInfo;

namespace {

struct EnvFile {  // sets MAGELLANO_GEMM_TUNING for one test
  explicit EnvFile(const std::string& path) { setenv("MAGELLANO_GEMM_TUNING", path.c_str(), 1); }
  ~EnvFile() { unsetenv("MAGELLANO_GEMM_TUNING"); }
};

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace

TEST(GemmTuning, DeviceSlug) {
  EXPECT_EQ(ops::device_slug("NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3");
  EXPECT_EQ(ops::device_slug("pthread-haswell-AMD EPYC"), "pthread-haswell-amd-epyc");
  EXPECT_EQ(ops::device_slug("  (weird)  "), "weird");
  EXPECT_EQ(ops::device_slug(""), "device");
}

TEST(GemmTuning, PathNames) {
  EXPECT_EQ(ops::gemm_path_from_string("clblast"), ops::GemmPath::clblast);
  EXPECT_EQ(ops::gemm_path_from_string("cpu_kernel"), ops::GemmPath::cpu_kernel);
  EXPECT_STREQ(ops::to_string(ops::GemmPath::cpu_kernel), "cpu_kernel");
  EXPECT_THROW(ops::gemm_path_from_string("cublas"), magellano::Error);
}

TEST(GemmTuning, EnvFileAppliesOnlyToItsDevice) {
  mgtest::TempDir dir;
  write(dir / "t.json", R"({"device": "Test Device 1", "driver": "9", "gemm_path": "clblast",
                          "cpu_kernel": {"MR": 4}, "clblast": {}})");
  EnvFile env((dir / "t.json").string());
  DeviceInfo d;
  d.name = "Test Device 1";
  auto doc = ops::find_gemm_tuning(d);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ((*doc)["gemm_path"], "clblast");
  EXPECT_EQ((*doc)["cpu_kernel"]["MR"], 4);
  d.name = "Another Device";
  EXPECT_FALSE(ops::find_gemm_tuning(d).has_value());
}

TEST(GemmTuning, BadEnvFilesAreClearErrors) {
  mgtest::TempDir dir;
  DeviceInfo d;
  d.name = "X";
  {
    EnvFile env((dir / "missing.json").string());
    try {
      ops::find_gemm_tuning(d);
      FAIL() << "a missing file must throw";
    } catch (const magellano::Error& e) {
      EXPECT_TRUE(has(e.what(), "is missing or cannot be opened")) << e.what();
    }
  }
  write(dir / "bad.json", "{not json");
  {
    EnvFile env((dir / "bad.json").string());
    try {
      ops::find_gemm_tuning(d);
      FAIL() << "invalid JSON must throw";
    } catch (const magellano::Error& e) {
      EXPECT_TRUE(has(e.what(), "magellano tune-gemm")) << e.what();
    }
  }
  write(dir / "nodevice.json", R"({"gemm_path": "clblast"})");
  {
    EnvFile env((dir / "nodevice.json").string());
    EXPECT_THROW(ops::find_gemm_tuning(d), magellano::Error);
  }
}

// Every embedded tuning file parses and names a device (find_gemm_tuning reads them all).
TEST(GemmTuning, EmbeddedFilesParse) {
  DeviceInfo d;
  d.name = "no such device";
  EXPECT_NO_THROW(ops::find_gemm_tuning(d));
  for (const auto& name : ops::embedded_tuning_names()) EXPECT_EQ(name, ops::device_slug(name));
}

TEST(GemmTuning, CliBadInput) {
  MG_REQUIRE_CLI();
  auto r = mgtest::run_cli({"tune-gemm", "--fraction", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.output, "error: --fraction must be in (0, 1]")) << r.output;
  r = mgtest::run_cli({"tune-gemm", "--shapes", "12x7"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.output, "error: --shapes: '12x7' is not MxNxK")) << r.output;
  r = mgtest::run_cli({"tune-gemm", "--out", "/nonexistent-dir/x.json"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.output, "error: cannot write /nonexistent-dir/x.json")) << r.output;
}

// A tuning file for the test device with an impossible GPU kernel setting: the first GEMM
// fails with one line naming the file and the key.
TEST(GemmTuning, BadGpuKernelParameterIsAClearError) {
  MG_REQUIRE_CLI();
  mgtest::TempDir dir;
  auto ctx = magellano::Context::create("");
  write(dir / "t.json", R"({"device": ")" + ctx->device().name +
                            R"(", "gemm_path": "gpu_kernel", "gpu_kernel": {"BK": 12}})");
  auto r = mgtest::run_cli({"bench", "gemm", "--size", "64", "--repeats", "1"},
                           {"MAGELLANO_GEMM_TUNING=" + (dir / "t.json").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.output, "gpu_kernel.BK must be 8 or 16")) << r.output;
}

// A tuning file's CLBlast parameters reach clblast::OverrideParameters at the first GEMM: a set
// CLBlast refuses stops the run with one line naming the kernel, the file and what to do.
TEST(GemmTuning, ClblastParametersAreAppliedAtStartUp) {
  MG_REQUIRE_CLI();
  mgtest::TempDir dir;
  auto ctx = magellano::Context::create("");
  write(dir / "t.json", R"({"device": ")" + ctx->device().name +
                            R"(", "gemm_path": "clblast", "clblast": {"Xgemm": {"NOT_A_PARAMETER": 1}}})");
  auto r = mgtest::run_cli({"bench", "gemm", "--size", "64", "--repeats", "1"},
                           {"MAGELLANO_GEMM_TUNING=" + (dir / "t.json").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.output, "OverrideParameters")) << r.output;
  EXPECT_TRUE(has(r.output, "applying Xgemm from " + (dir / "t.json").string())) << r.output;
  EXPECT_TRUE(has(r.output, "regenerate that file with `magellano tune-gemm`")) << r.output;
}
