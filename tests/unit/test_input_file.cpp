// Opening user files (runtime/input_file.hpp): regular files only. A folder, a FIFO or a device
// where a file is expected is one line naming the file, and a FIFO never blocks (it used to: a
// FIFO named model.safetensors waited forever for a writer).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>

#include <gtest/gtest.h>

#include "error_text.hpp"
#include "magellano/runtime/input_file.hpp"
#include "temp_dir.hpp"

using magellano::InputFile;
using magellano::read_whole_file;
using mgtest::error_of;
using mgtest::has;
namespace fs = std::filesystem;

TEST(InputFile, ReadsRegularFiles) {
  mgtest::TempDir dir;
  std::ofstream(dir / "a.txt", std::ios::binary) << std::string("one\0two", 7);
  EXPECT_EQ(read_whole_file(dir / "a.txt", "text"), std::string("one\0two", 7));
  std::ofstream(dir / "empty.txt");
  EXPECT_EQ(read_whole_file(dir / "empty.txt", "text"), "");
  const InputFile f = InputFile::open(dir / "a.txt", "text");
  EXPECT_EQ(f.size(), 7u);
  EXPECT_GE(f.fd(), 0);
  EXPECT_EQ(::fcntl(f.fd(), F_GETFL) & O_NONBLOCK, 0);  // an ordinary descriptor after the checks
}

TEST(InputFile, MissingFoldersAndDevicesAreOneLine) {
  mgtest::TempDir dir;
  std::string msg = error_of([&] { read_whole_file(dir / "missing.json", "trainer state", " Hint."); });
  EXPECT_EQ(msg, "trainer state " + (dir / "missing.json").string() +
                     " is missing or cannot be opened: No such file or directory. Hint.");
  msg = error_of([&] { InputFile::open(dir.path(), "token file"); });
  EXPECT_EQ(msg, "token file " + dir.path().string() + " is a folder, not a file. Give the path of a file.");
  msg = error_of([] { InputFile::open("/dev/null", "config file", " Give a config."); });
  EXPECT_EQ(msg, "config file /dev/null is not a regular file (a FIFO, socket or device). Give a config.");
}

// The open happens on another thread; should it block, opening the FIFO for writing releases it
// (so this test cannot hang) and the test fails.
TEST(InputFile, AFifoIsRefusedWithoutBlocking) {
  mgtest::TempDir dir;
  const fs::path fifo = dir / "model.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto result = std::async(std::launch::async, [&] { return error_of([&] { read_whole_file(fifo, "safetensors file"); }); });
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    const int fd = ::open(fifo.c_str(), O_WRONLY);  // unblocks the reader
    if (fd >= 0) ::close(fd);
    result.wait();
    FAIL() << "opening a FIFO blocked";
  }
  const std::string msg = result.get();
  EXPECT_TRUE(has(msg, "safetensors file " + fifo.string() + " is not a regular file (a FIFO, socket or device)")) << msg;
}
