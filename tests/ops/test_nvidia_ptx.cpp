// Kernel forms with inline PTX compile only on an NVIDIA device, which CI does not have; PoCL runs
// their portable forms: cl/gemm_mma.cl's hardware forms (EMULATE 0: mma.sync, ldmatrix, cvt,
// cp.async) and the SHFL 1 forms (shfl.sync) of cl/selective_scan_states.cl and cl/selective_scan_lanes.cl. So that a mistake in those
// branches (a reserved OpenCL word as a name, a bad asm constraint) fails here and not first on a
// GPU, every gemm_mma hardware variant (PREC bf16 / tf32 x TA x TB x LDMATRIX x PTX_CVT, and CP_ASYNC for the
// packed kernel, which TA / TB do not change) is compiled to PTX
// by clang-16 for nvptx64-nvidia-nvcl (the target of NVIDIA's OpenCL), and the PTX must hold the
// variant's instructions. A deliberately broken source (a local named `half`, the error this test
// was written after) must fail. clang-16 is installed by scripts/setup.sh (the sanitizer stage); the
// test skips, saying so, where it is absent.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "project_files.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool have_clang() { return std::system("command -v clang-16 >/dev/null 2>&1") == 0; }

// Compiles `source` with `defines`; returns the PTX, or "" when clang fails.
std::string to_ptx(const mgtest::TempDir& dir, const std::string& source, const std::string& defines,
                   const char* emulate = "-DEMULATE=0 ") {
  const fs::path cl = dir.path() / "k.cl", ptx = dir.path() / "k.ptx", log = dir.path() / "log.txt";
  std::ofstream(cl) << source;
  fs::remove(ptx);
  const std::string cmd = "clang-16 -x cl -cl-std=CL1.2 -fgnu-keywords -target nvptx64-nvidia-nvcl "
                          "-Xclang -finclude-default-header -O1 -S " + std::string(emulate) + defines + " -o '" +
                          ptx.string() + "' '" + cl.string() + "' > '" + log.string() + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "clang-16 failed (" << defines << "):\n" << read(log).substr(0, 2000);
    return "";
  }
  return read(ptx);
}

}  // namespace

TEST(GemmMmaPtx, EveryHardwareVariantCompilesToItsInstructions) {
  if (!have_clang()) GTEST_SKIP() << "clang-16 is not installed (scripts/setup.sh installs it)";
  const mgtest::TempDir dir;
  const std::string source = read(mgtest::project_file("cl/common.cl")) + "\n#line 1\n" +
                             read(mgtest::project_file("cl/gemm_mma.cl"));
  for (int prec : {1, 2})
    for (int ta : {0, 1})
      for (int tb : {0, 1})
        for (int ldm : {0, 1})
          for (int cvt : {0, 1})
            for (int cp : {0, 1}) {
            if (cp && (ta || tb)) continue;
            const std::string d = "-DPREC=" + std::to_string(prec) + " -DTA=" + std::to_string(ta) +
                                  " -DTB=" + std::to_string(tb) + " -DLDMATRIX=" + std::to_string(ldm) +
                                  " -DPTX_CVT=" + std::to_string(cvt) + " -DCP_ASYNC=" + std::to_string(cp);
            SCOPED_TRACE(d);
            const std::string ptx = to_ptx(dir, source, d);
            if (ptx.empty()) continue;
            EXPECT_NE(ptx.find(prec == 1 ? "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
                                         : "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"),
                      std::string::npos);
            EXPECT_EQ(ptx.find("ldmatrix.sync.aligned.m8n8.x4") != std::string::npos, ldm == 1);
            EXPECT_EQ(ptx.find(prec == 1 ? "cvt.rn.bf16x2.f32" : "cvt.rna.tf32.f32") != std::string::npos, cvt == 1);
            EXPECT_EQ(ptx.find("cp.async.cg.shared.global") != std::string::npos, cp == 1);
            EXPECT_EQ(ptx.find("ld.local") == std::string::npos, true) << "accumulators spilled to the stack";
          }
}

TEST(GemmMmaPtx, AReservedWordAsANameFails) {
  if (!have_clang()) GTEST_SKIP() << "clang-16 is not installed (scripts/setup.sh installs it)";
  const mgtest::TempDir dir;
  std::string source = read(mgtest::project_file("cl/common.cl")) + "\n#line 1\n" +
                       read(mgtest::project_file("cl/gemm_mma.cl"));
  const std::string name = "k_half";
  ASSERT_NE(source.find(name), std::string::npos);
  for (size_t at; (at = source.find(name)) != std::string::npos;) source.replace(at, name.size(), "half");
  testing::TestPartResultArray results;
  {
    testing::ScopedFakeTestPartResultReporter reporter(
        testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    to_ptx(dir, source, "-DPREC=1 -DLDMATRIX=1");
  }
  EXPECT_EQ(results.size(), 1) << "the broken source compiled";
}

// The scan's shuffle form: every state count it is chosen for (powers of two up to 16, whole warps).
TEST(NvidiaPtx, ScanShuffleFormCompilesToShuffles) {
  if (!have_clang()) GTEST_SKIP() << "clang-16 is not installed (scripts/setup.sh installs it)";
  const mgtest::TempDir dir;
  const std::string source = read(mgtest::project_file("cl/common.cl")) + "\n#line 1\n" +
                             read(mgtest::project_file("cl/selective_scan_states.cl"));
  for (const char* d : {"-DDSTATE=16 -DCPG=16", "-DDSTATE=8 -DCPG=8", "-DDSTATE=4 -DCPG=16"})
    for (int shfl : {0, 1}) {
      const std::string defines = std::string(d) + " -DSHFL=" + std::to_string(shfl);
      SCOPED_TRACE(defines);
      const std::string ptx = to_ptx(dir, source, defines, "");
      if (ptx.empty()) continue;
      EXPECT_EQ(ptx.find("shfl.sync.bfly.b32") != std::string::npos, shfl == 1);
    }
}

// The lanes mapping's shuffle form, at every state count it is chosen for (N/4 lanes a channel).
TEST(NvidiaPtx, ScanLanesShuffleFormCompilesToShuffles) {
  if (!have_clang()) GTEST_SKIP() << "clang-16 is not installed (scripts/setup.sh installs it)";
  const mgtest::TempDir dir;
  const std::string source = read(mgtest::project_file("cl/common.cl")) + "\n#line 1\n" +
                             read(mgtest::project_file("cl/selective_scan_lanes.cl"));
  for (const char* d : {"-DDSTATE=16 -DCPG=32", "-DDSTATE=8 -DCPG=16", "-DDSTATE=4 -DCPG=128",
                        "-DDSTATE=32 -DCPG=8", "-DDSTATE=64 -DCPG=2"})
    for (int shfl : {0, 1}) {
      const std::string defines = std::string(d) + " -DSUB=16 -DSHFL=" + std::to_string(shfl);
      SCOPED_TRACE(defines);
      const std::string ptx = to_ptx(dir, source, defines, "");
      if (ptx.empty()) continue;
      EXPECT_EQ(ptx.find("shfl.sync.bfly.b32") != std::string::npos, shfl == 1);
    }
}
