// Runtime: error names, device selection strings, the on-disk kernel cache, allocation limits,
// the memory tracker, and a process ending with kernel work still in flight.
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "harness.hpp"
#include "magellano/ops/elementwise.hpp"
#include "magellano/ops/launch.hpp"
#include "magellano/ops/matmul.hpp"
#include "magellano/runtime/cl_event.hpp"
#include "magellano/runtime/device.hpp"
#include "temp_dir.hpp"

using namespace magellano;
namespace fs = std::filesystem;

namespace {

std::vector<DeviceInfo> fake_devices() {
  DeviceInfo a, b, c;
  a.platform_index = 0, a.device_index = 0, a.platform_name = "Portable Computing Language",
  a.name = "pthread-haswell-AMD EPYC", a.type = "cpu";
  b.platform_index = 1, b.device_index = 0, b.platform_name = "NVIDIA CUDA",
  b.name = "NVIDIA H100 80GB HBM3", b.type = "gpu";
  c.platform_index = 1, c.device_index = 1, c.platform_name = "NVIDIA CUDA",
  c.name = "NVIDIA A100", c.type = "gpu";
  return {a, b, c};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Errors, CodesHaveNamesAndHints) {
  EXPECT_EQ(cl_error_name(-5), "CL_OUT_OF_RESOURCES");
  EXPECT_EQ(cl_error_name(-4), "CL_MEM_OBJECT_ALLOCATION_FAILURE");
  EXPECT_EQ(cl_error_name(-9999), "CL_UNKNOWN_ERROR(-9999)");
  EXPECT_EQ(clblast_status_name(-2046), "CLBlastInvalidLocalMemUsage");
  EXPECT_EQ(clblast_status_name(-5), "CL_OUT_OF_RESOURCES");
  const std::string msg = error_of([] { check_cl(-4, "clEnqueueNDRangeKernel", "running add"); });
  EXPECT_NE(msg.find("clEnqueueNDRangeKernel failed: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("while running add"), std::string::npos) << msg;
  EXPECT_NE(msg.find("POCL_MEMORY_LIMIT"), std::string::npos) << msg;
  EXPECT_NO_THROW(check_cl(0, "clFinish"));
}

TEST(DeviceSelection, GoodSpecs) {
  const auto devs = fake_devices();
  EXPECT_EQ(select_device("1:1", devs).name, "NVIDIA A100");
  EXPECT_EQ(select_device("cpu", devs).name, "pthread-haswell-AMD EPYC");
  EXPECT_EQ(select_device("GPU", devs).name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(select_device("a100", devs).name, "NVIDIA A100");         // device name substring
  EXPECT_EQ(select_device("portable", devs).name, "pthread-haswell-AMD EPYC");  // platform name
  ::unsetenv("MAGELLANO_DEVICE");
  EXPECT_EQ(select_device("", devs).type, "gpu");  // default: the first GPU
  ::setenv("MAGELLANO_DEVICE", "cpu", 1);
  EXPECT_EQ(select_device("", devs).type, "cpu");  // the environment variable
  EXPECT_EQ(select_device("h100", devs).type, "gpu");  // an explicit spec wins over it
  ::unsetenv("MAGELLANO_DEVICE");
}

TEST(DeviceSelection, BadSpecsListWhatIsThere) {
  const auto devs = fake_devices();
  for (const char* spec : {"2:0", "0:5", "accelerator", "radeon", "1:x"}) {
    const std::string msg = error_of([&] { select_device(spec, devs); });
    EXPECT_NE(msg.find(std::string("Device '") + spec + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1:0  gpu  NVIDIA H100 80GB HBM3  [NVIDIA CUDA]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("0:0  cpu  pthread-haswell-AMD EPYC"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] { select_device("cpu", {}); }).find("No OpenCL device found"), std::string::npos);
}

TEST(DeviceSelection, RealDevicesAreListed) {
  const auto devs = list_devices();
  ASSERT_FALSE(devs.empty()) << "no OpenCL device: run scripts/setup.sh";
  for (const auto& d : devs) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.global_mem_bytes, 0u);
    EXPECT_GT(d.max_alloc_bytes, 0u);
    EXPECT_LE(d.max_alloc_bytes, d.global_mem_bytes);
    EXPECT_GT(d.compute_units, 0u);
    EXPECT_EQ(select_device(d.id(), devs).name, d.name);
  }
}

// A fresh cache folder per test, so the first build always compiles.
class KernelCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mg-cache-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ::setenv("MAGELLANO_CACHE_DIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    ::unsetenv("MAGELLANO_CACHE_DIR");
  }
  // Builds cl/elementwise.cl in a new context and says where it came from.
  ProgramCache::Source build_once(std::string* path = nullptr) {
    auto ctx = Context::create(mgtest::test_ctx().device());
    const BuildOptions knobs = BuildOptions().define("CACHE_TEST", 1);
    ctx->programs().get("elementwise", knobs.str());
    const ProgramCache::Source source = ctx->programs().last_source();
    if (path) *path = ctx->programs().entry_path("elementwise", knobs.str());
    // It must also work: run a kernel from it.
    Tensor a = Tensor::from_host(*ctx, Shape{3}, {1, 2, 3}), out = Tensor::empty(*ctx, Shape{3});
    ops::Launch(*ctx, "elementwise", "scale_acc", knobs).arg(a).arg(out).arg(int64_t(3)).arg(2.0f)
        .arg(false).run(3);
    EXPECT_EQ(out.to_host(), (std::vector<float>{2, 4, 6}));
    return source;
  }
  fs::path dir_;
};

TEST_F(KernelCache, SecondBuildHitsTheDiskCache) {
  std::string path;
  EXPECT_EQ(build_once(&path), ProgramCache::Source::compiled);
  EXPECT_TRUE(fs::exists(path)) << path;
  EXPECT_EQ(path.rfind(dir_.string(), 0), 0u) << "MAGELLANO_CACHE_DIR not honoured: " << path;
  EXPECT_EQ(build_once(), ProgramCache::Source::disk);
}

TEST_F(KernelCache, CorruptOrForeignEntriesAreRebuilt) {
  std::string path;
  build_once(&path);
  const auto good_size = fs::file_size(path);
  {  // flip a byte in the middle of the binary: the checksum no longer matches
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(good_size / 2));
    char c;
    f.seekg(static_cast<std::streamoff>(good_size / 2));
    f.get(c);
    f.seekp(static_cast<std::streamoff>(good_size / 2));
    f.put(static_cast<char>(c ^ 0x5A));
  }
  EXPECT_EQ(build_once(), ProgramCache::Source::compiled);
  EXPECT_EQ(build_once(), ProgramCache::Source::disk);  // rewritten and valid again
  fs::resize_file(path, good_size / 3);                  // truncated
  EXPECT_EQ(build_once(), ProgramCache::Source::compiled);
  {  // a foreign file with the right name
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "MGKCACH1 this is not a cache entry for this key";
  }
  EXPECT_EQ(build_once(), ProgramCache::Source::compiled);
  EXPECT_EQ(build_once(), ProgramCache::Source::disk);
}

TEST(KernelBuild, SourcesFromMagellanoClDirAndBuildErrorsCarryTheLog) {
  // MAGELLANO_CL_DIR replaces the embedded sources: point it at a folder with a broken kernel.
  const fs::path dir = fs::temp_directory_path() / ("mg-cl-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "common.cl") << ProgramCache::source_of("common");
  std::ofstream(dir / "broken.cl") << "__kernel void k(__global float* x) { x[0] = undefined_name; }\n";
  ::setenv("MAGELLANO_CL_DIR", dir.c_str(), 1);
  auto ctx = Context::create(mgtest::test_ctx().device());
  const std::string msg = error_of([&] { ctx->kernel("broken", "k"); });
  const std::string missing = error_of([&] { ctx->kernel("no_such_program", "k"); });
  ::unsetenv("MAGELLANO_CL_DIR");
  fs::remove_all(dir);
  EXPECT_NE(msg.find("clBuildProgram failed for cl/broken.cl"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CL_BUILD_PROGRAM_FAILURE"), std::string::npos) << msg;
  EXPECT_NE(msg.find("undefined_name"), std::string::npos) << "the build log is missing: " << msg;
  EXPECT_NE(missing.find("no_such_program.cl"), std::string::npos) << missing;
  const std::string embedded = error_of([&] { ctx->kernel("no_such_program", "k"); });
  EXPECT_NE(embedded.find("No kernel program named 'no_such_program'"), std::string::npos) << embedded;
}

// MAGELLANO_CL_OPTIONS reaches the compiler of every program (and the cache key, so a build
// without it is not served the other's binary); MAGELLANO_CL_BUILD_LOG=1 prints the log.
TEST(KernelBuild, ExtraOptionsAndBuildLogFromTheEnvironment) {
  const fs::path dir = fs::temp_directory_path() / ("mg-clopt-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "common.cl") << ProgramCache::source_of("common");
  std::ofstream(dir / "needs.cl") << "#ifndef NEEDED\n#error NEEDED is not defined\n#endif\n"
                                     "#warning log-line-from-needs\n"
                                     "__kernel void k(__global float* x, ulong off) { x[off] = NEEDED; }\n";
  struct Env {  // sets a variable for this test, then puts back what was there
    std::string name;
    std::optional<std::string> old;
    Env(const char* n, const std::string& v) : name(n) {
      if (const char* o = std::getenv(n)) old = o;
      ::setenv(n, v.c_str(), 1);
    }
    ~Env() { old ? ::setenv(name.c_str(), old->c_str(), 1) : ::unsetenv(name.c_str()); }
  };
  Env cl_dir("MAGELLANO_CL_DIR", dir.string()), cache("MAGELLANO_CACHE_DIR", (dir / "cache").string());
  {
    auto ctx = Context::create(mgtest::test_ctx().device());
    EXPECT_NE(error_of([&] { ctx->kernel("needs", "k"); }).find("NEEDED is not defined"), std::string::npos);
  }
  Env options("MAGELLANO_CL_OPTIONS", "-DNEEDED=7"), show("MAGELLANO_CL_BUILD_LOG", "1");
  testing::internal::CaptureStderr();
  std::vector<float> got;
  {
    auto ctx = Context::create(mgtest::test_ctx().device());
    Tensor x = Tensor::from_host(*ctx, Shape{2}, {0, 0});
    ops::Launch(*ctx, "needs", "k").arg(x).run(1);
    got = x.to_host();
  }
  const std::string log = testing::internal::GetCapturedStderr();
  fs::remove_all(dir);
  EXPECT_EQ(got, (std::vector<float>{7, 0}));
  EXPECT_NE(log.find("build log of cl/needs.cl"), std::string::npos) << log;
  EXPECT_NE(log.find("-DNEEDED=7"), std::string::npos) << log;
  EXPECT_NE(log.find("log-line-from-needs"), std::string::npos) << log;
}

TEST(Allocation, BeyondTheLargestAllocationIsAClearError) {
  auto ctx = Context::create(mgtest::test_ctx().device());
  const auto& d = ctx->device();
  const std::string msg = error_of([&] { ctx->allocate(d.max_alloc_bytes + 1, MemCategory::activations); });
  EXPECT_NE(msg.find("largest single allocation is " + format_bytes(d.max_alloc_bytes)), std::string::npos) << msg;
  EXPECT_NE(msg.find("of activations"), std::string::npos) << msg;
  if (d.is_pocl()) EXPECT_NE(msg.find("POCL_MEMORY_LIMIT"), std::string::npos) << msg;
  EXPECT_EQ(ctx->memory().current_total(), 0u);  // nothing was tracked for the failed request
}

TEST(Allocation, BeyondTheDeviceMemoryIsAClearError) {
  auto ctx = Context::create(mgtest::test_ctx().device());
  const auto& d = ctx->device();
  std::vector<std::shared_ptr<Storage>> held;
  std::string msg;
  for (uint64_t used = 0; used + d.max_alloc_bytes <= d.global_mem_bytes; used += d.max_alloc_bytes)
    held.push_back(ctx->allocate(d.max_alloc_bytes, MemCategory::parameters));
  msg = error_of([&] { ctx->allocate(d.max_alloc_bytes, MemCategory::parameters); });
  EXPECT_NE(msg.find("are already in use"), std::string::npos) << msg;
  EXPECT_NE(msg.find(format_bytes(d.global_mem_bytes)), std::string::npos) << msg;
  held.clear();
  EXPECT_EQ(ctx->memory().current_total(), 0u);
}

TEST(MemoryTracker, CurrentAndPeakPerCategory) {
  auto ctx = Context::create(mgtest::test_ctx().device());
  auto& m = ctx->memory();
  {
    Tensor w = Tensor::empty(*ctx, Shape{1000}, DType::f32, MemCategory::parameters);
    Tensor h = Tensor::empty(*ctx, Shape{10, 100}, DType::f16, MemCategory::activations);
    EXPECT_EQ(m.current(MemCategory::parameters), 4000u);
    EXPECT_EQ(m.current(MemCategory::activations), 2000u);
    {
      Tensor s = Tensor::empty(*ctx, Shape{250}, DType::i32, MemCategory::scratch);
      EXPECT_EQ(m.current_total(), 7000u);
    }
    EXPECT_EQ(m.current(MemCategory::scratch), 0u);
    EXPECT_EQ(m.peak(MemCategory::scratch), 1000u);
    Tensor v = w.view(Shape{10, 100});  // a view allocates nothing
    EXPECT_EQ(m.current_total(), 6000u);
  }
  EXPECT_EQ(m.current_total(), 0u);
  EXPECT_EQ(m.peak_total(), 7000u);
  m.reset_peaks();
  EXPECT_EQ(m.peak_total(), 0u);
  EXPECT_EQ(m.to_json()["parameters"]["peak_bytes"], 0u);
}

TEST(BufferPool, SizeClassesAreAtMostAnEighthLarger) {
  EXPECT_EQ(BufferPool::capacity_for(1), 256u);
  EXPECT_EQ(BufferPool::capacity_for(256), 256u);
  EXPECT_EQ(BufferPool::capacity_for(257), 512u);
  EXPECT_EQ(BufferPool::capacity_for(4096), 4096u);
  EXPECT_EQ(BufferPool::capacity_for(4097), 4608u);  // granule 512
  for (uint64_t b : {1000ull, 4097ull, 65537ull, 1234567ull, 987654321ull}) {
    const uint64_t c = BufferPool::capacity_for(b);
    EXPECT_GE(c, b);
    EXPECT_LE(double(c), std::max(256.0, double(b) * 1.125)) << b;
    EXPECT_EQ(BufferPool::capacity_for(c), c) << "a class must map to itself";
  }
}

TEST(BufferPool, ReleasedBuffersAreReusedAndStillPoisoned) {
  auto ctx = Context::create(mgtest::test_ctx().device());
  ctx->set_buffer_pool(true);
  ctx->set_poison_allocations(true);
  cl_mem first = nullptr;
  {
    Tensor a = Tensor::full(*ctx, Shape{1000}, 2.0f);
    first = a.buffer();
    EXPECT_EQ(ctx->memory().current_total(), 4000u);
    EXPECT_EQ(ctx->memory().current_reserved(), BufferPool::capacity_for(4000));
  }
  EXPECT_EQ(ctx->memory().current_total(), 0u);
  EXPECT_EQ(ctx->buffer_pool().cached_bytes(), BufferPool::capacity_for(4000));
  EXPECT_EQ(ctx->memory().current_reserved(), BufferPool::capacity_for(4000));  // still held
  Tensor b = Tensor::empty(*ctx, Shape{990});  // same size class
  EXPECT_EQ(b.buffer(), first);
  EXPECT_EQ(ctx->buffer_pool().cached_bytes(), 0u);
  for (float v : b.to_host()) ASSERT_TRUE(std::isnan(v)) << "a reused buffer must be poisoned again";
  Tensor c = Tensor::empty(*ctx, Shape{4000});  // another class: a new buffer
  EXPECT_NE(c.buffer(), first);
}

TEST(BufferPool, TurnedOffBuffersAreReleased) {
  auto ctx = Context::create(mgtest::test_ctx().device());
  ctx->set_buffer_pool(false);
  { Tensor a = Tensor::empty(*ctx, Shape{1000}); EXPECT_EQ(ctx->memory().current_reserved(), 4000u); }
  EXPECT_EQ(ctx->buffer_pool().cached_bytes(), 0u);
  EXPECT_EQ(ctx->memory().current_reserved(), 0u);
}

TEST(BufferPool, CacheIsEmptiedBeforeAnAllocationThatWouldNotFit) {
  auto ctx = Context::create(mgtest::test_ctx().device());
  ctx->set_buffer_pool(true);
  const auto& d = ctx->device();
  const uint64_t big = BufferPool::capacity_for(d.max_alloc_bytes / 2);  // a size class
  std::vector<std::shared_ptr<Storage>> held;
  uint64_t used = 0;
  for (; used + big <= d.global_mem_bytes; used += big) held.push_back(ctx->allocate(big, MemCategory::scratch));
  held.pop_back();  // now cached: the device is as full as before
  EXPECT_EQ(ctx->buffer_pool().cached_bytes(), big);
  // A request of another size class that fits only once the cache is released.
  const uint64_t remaining = d.global_mem_bytes - used;
  const uint64_t request = BufferPool::capacity_for(remaining + 1) != big ? remaining + 1 : big + 1;
  ASSERT_NE(BufferPool::capacity_for(request), big);
  held.push_back(ctx->allocate(request, MemCategory::scratch));
  EXPECT_EQ(ctx->buffer_pool().cached_bytes(), 0u);
}

TEST(Profiler, KernelsAndGemmSpansAreTimedByName) {
  ::setenv("MAGELLANO_PROFILE", "1", 1);
  auto ctx = Context::create(mgtest::test_ctx().device());
  ::unsetenv("MAGELLANO_PROFILE");
  ASSERT_TRUE(ctx->profiler().enabled());
  Tensor a = Tensor::full(*ctx, Shape{64, 48}, 1.0f), b = Tensor::full(*ctx, Shape{48, 32}, 1.0f);
  Tensor c = Tensor::empty(*ctx, Shape{64, 32});
  for (int i = 0; i < 3; ++i) ops::gemm(a, false, b, false, c);
  const auto entries = ctx->profiler().report();
  // CLBlast's GEMM is one span; the CPU path's kernels (gemm_pack_a, ...) are timed one by one.
  int64_t gemm_calls = 0;
  double gemm_seconds = 0;
  for (const auto& e : entries)
    if (e.name.find("gemm") != std::string::npos && e.name.find("pack") == std::string::npos)
      gemm_calls += e.calls, gemm_seconds += e.seconds;
  EXPECT_EQ(gemm_calls, 3);
  EXPECT_GT(gemm_seconds, 0.0);
  EXPECT_EQ(c.to_host()[0], 48.0f);
  EXPECT_TRUE(ctx->profiler().report().empty()) << "report() starts over";
  auto quiet = Context::create(mgtest::test_ctx().device());
  EXPECT_FALSE(quiet->profiler().enabled());
  EXPECT_EQ(quiet->profiler().kernel_event("x"), nullptr);
}

// A launch whose result is never read back: PoCL generates the kernel's code for the device on its
// own thread when the kernel first runs, so this test can end with that still going.
TEST(ExitWithWorkInFlight, LaunchNeverWaitedFor) {
  Tensor a = mgtest::upload(Shape{5, 7}, mgtest::randn(35, 1));
  Tensor b = ops::scale(a, 3.0f);
  EXPECT_EQ(b.shape(), (Shape{5, 7}));
}

// The test above in a process of its own, with empty kernel caches so the code generation is slow
// enough to be running when the tests end. The exit handlers then destroyed LLVM's static state
// under PoCL's thread: a segfault after "[  PASSED  ]" (Shape.TransposeLast2Shape did this on a
// clean CI machine). The harness now finishes the test device's work before the process exits.
TEST(ExitWithWorkInFlight, TheProcessStillExitsCleanly) {
  mgtest::TempDir tmp;
  const fs::path self = fs::read_symlink("/proc/self/exe");
  const fs::path log = tmp / "log.txt";
  const std::string cmd = "env MAGELLANO_CACHE_DIR='" + (tmp / "kernels").string() + "' POCL_CACHE_DIR='" +
                          (tmp / "pocl").string() + "' '" + self.string() +
                          "' --gtest_filter=ExitWithWorkInFlight.LaunchNeverWaitedFor > '" + log.string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the test passed, then the process ended with status " << status << ":\n" << output;
}

// Event (runtime/cl_event.hpp), as the gradient exchange uses it: a non-blocking read of a buffer
// into host memory finishes with the buffer's values (polled with done(), then wait()); a command
// whose status turns negative (a user event failed with CL_OUT_OF_RESOURCES stands in for a
// failed read) makes done() and wait() throw an Error naming what the command did, instead of
// reporting it finished or waiting forever. Broken variant: an Event that ignored the status
// would report done() == true for the failed one, which the EXPECT_THROW catches.
TEST(Events, ANonBlockingReadFinishesAndAFailedCommandThrows) {
  Context& ctx = mgtest::test_ctx();
  std::vector<float> values(1001);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i) * 0.25f - 7.0f;
  const Tensor t = Tensor::from_host(ctx, Shape{int64_t(values.size())}, values);
  std::vector<float> host(values.size(), std::nanf(""));
  cl_event e = nullptr;
  ASSERT_EQ(clEnqueueReadBuffer(ctx.queue(), t.buffer(), CL_FALSE, t.offset() * 4, values.size() * 4, host.data(), 0,
                                nullptr, &e),
            CL_SUCCESS);
  clFlush(ctx.queue());
  Event read(e, "a test read");
  for (int polls = 0; !read.done() && polls < 1000000; ++polls) {
  }
  read.wait();
  EXPECT_TRUE(read.done());
  EXPECT_EQ(host, values);

  cl_int code = CL_SUCCESS;
  cl_event user = clCreateUserEvent(ctx.cl(), &code);
  ASSERT_EQ(code, CL_SUCCESS);
  Event failing(user, "a test command");
  EXPECT_FALSE(failing.done());  // still pending
  ASSERT_EQ(clSetUserEventStatus(user, CL_OUT_OF_RESOURCES), CL_SUCCESS);
  try {
    failing.done();
    ADD_FAILURE() << "done() reported a failed command without throwing";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("a test command"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("CL_OUT_OF_RESOURCES"), std::string::npos) << err.what();
  }
  EXPECT_THROW(failing.wait(), Error);
  failing.reset();  // (returns: the failed command has finished)
  EXPECT_TRUE(failing.done());
}
