// `magellano merge-adapter` as a real process: --out onto an existing checkpoint or folder is
// refused (exit 1, one line) with every file as it was; a new --out is written as a complete
// folder, with no temporary left beside it.
#include "cli.hpp"
#include "folder_snapshot.hpp"
#include "temp_dir.hpp"
#include "train_fixture.hpp"

using namespace mgtest;
namespace fs = std::filesystem;

TEST(MergeAdapterCli, AnExistingOutputIsNeverOverwritten) {
  MG_REQUIRE_CLI();
  TempDir d;
  const TrainFixture f(d.path());
  ASSERT_EQ(f.train().exit_code, 0);  // run/step-00000002 and step-00000004
  const fs::path base = f.run / "step-00000004", lora = d / "lora";
  ASSERT_EQ(f.train({"--init-from", base.string(), "--set", "lora.rank=2", "--set", "checkpoint.dir=" + lora.string()})
                .exit_code, 0);
  const auto merge = [&](const fs::path& out) {
    return run_on_device({"merge-adapter", "--checkpoint", base.string(), "--adapter",
                          (lora / "step-00000004").string(), "--out", out.string()});
  };
  fs::create_directories(d / "empty");
  const auto before = snapshot(d.path());
  for (const fs::path& out : {f.run / "step-00000002", d / "empty", base}) {
    EXPECT_TRUE(fails_with_one_line(merge(out), 1, "merge-adapter: the output " + out.string() + " already exists"));
    EXPECT_EQ(difference(before, snapshot(d.path())), "") << out;
  }
  const auto r = merge(d / "merged");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(d / "merged")) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors"}));
  for (const auto& e : fs::directory_iterator(d.path()))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
}
