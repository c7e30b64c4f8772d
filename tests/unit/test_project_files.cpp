// io/project_files.hpp: where the CLI and the tests find configs/, tests/fixtures/ and the
// shared data (relocatable binaries): $MAGELLANO_SOURCE_DIR first, then the current folder, the
// executable's folder and the two above it, then the source tree built from; the searched
// folders named when nothing is found.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>

#include "magellano/io/project_files.hpp"
#include "project_files.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
namespace io = magellano::io;

namespace {

// Sets an environment variable for a scope, restoring the previous value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "{}";
}

fs::path exe_dir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

}  // namespace

TEST(ProjectFiles, SourceDirVariableComesFirst) {
  mgtest::TempDir dir;
  touch(dir / "configs/tiny.json");
  ScopedEnv env("MAGELLANO_SOURCE_DIR", dir.path().string());
  EXPECT_EQ(io::find_project_path({"configs/tiny.json"}, "/nonexistent"), dir / "configs/tiny.json");
  EXPECT_EQ(io::project_roots({}).front(), dir.path());
  EXPECT_EQ(mgtest::project_file("configs/tiny.json"), dir / "configs/tiny.json");
}

TEST(ProjectFiles, RootsAreTheCurrentFolderTheExecutablesFoldersThenTheSourceTree) {
  const auto roots = io::project_roots("/src/tree");
  const fs::path bin = exe_dir();
  const std::vector<fs::path> tail = {fs::current_path(), bin, bin.parent_path(), bin.parent_path().parent_path(),
                                      "/src/tree"};
  ASSERT_GE(roots.size(), tail.size());
  EXPECT_EQ(std::vector<fs::path>(roots.end() - tail.size(), roots.end()), tail);
}

TEST(ProjectFiles, MissingFilesNameEveryFolderSearched) {
  mgtest::TempDir dir;
  ScopedEnv env("MAGELLANO_SOURCE_DIR", dir.path().string());
  std::string searched;
  EXPECT_TRUE(io::find_project_path({"configs/no-such.json"}, "/src/tree", &searched).empty());
  EXPECT_NE(searched.find((dir / "configs").string()), std::string::npos) << searched;
  EXPECT_NE(searched.find((exe_dir() / "configs").string()), std::string::npos) << searched;
  EXPECT_NE(searched.find("/src/tree/configs"), std::string::npos) << searched;
  try {
    mgtest::project_file("configs/no-such.json");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("cannot find configs/no-such.json (looked in "), std::string::npos) << e.what();
  }
}

TEST(ProjectFiles, SharedDataFromItsVariableOrBesideTheRoots) {
  mgtest::TempDir dir;
  {
    ScopedEnv env("MAGELLANO_SHARED_DATA", (dir / "elsewhere").string());
    EXPECT_EQ(io::find_shared_data({}), dir / "elsewhere");  // as given, even if missing
  }
  ScopedEnv none("MAGELLANO_SHARED_DATA", "");
  fs::create_directories(dir / "shared/data");
  fs::create_directories(dir / "checkout");
  ScopedEnv src("MAGELLANO_SOURCE_DIR", (dir / "checkout").string());
  EXPECT_EQ(io::find_shared_data({}), dir / "checkout/../shared/data");  // ../shared/data beside a checkout
}
