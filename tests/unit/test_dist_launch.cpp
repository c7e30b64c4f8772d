// The launch environment (dist/launch.hpp) and each rank's device (dist/rank_device.hpp), without
// starting MPI: the variables of Open MPI and MPICH, a single process, malformed values, GPUs by
// local rank, explicit lists, and PoCL's thread share.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "magellano/dist/launch.hpp"
#include "magellano/dist/rank_device.hpp"
#include "magellano/runtime/error.hpp"

using namespace magellano;

namespace {

dist::Launch from(const std::map<std::string, std::string>& env) {
  return dist::launch_from([&](const char* n) -> const char* {
    const auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

DeviceInfo device(int p, int d, const std::string& type, const std::string& name) {
  DeviceInfo i;
  i.platform_index = p;
  i.device_index = d;
  i.type = type;
  i.name = name;
  return i;
}

}  // namespace

TEST(DistLaunch, ReadsOpenMpiAndMpichAndDefaultsToOneProcess) {
  const auto alone = from({});
  EXPECT_FALSE(alone.distributed());
  EXPECT_EQ(alone.size, 1);
  const auto ompi = from({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_TRUE(ompi.distributed());
  EXPECT_EQ(ompi.rank, 3);
  EXPECT_EQ(ompi.size, 4);
  EXPECT_EQ(ompi.local_rank, 1);
  EXPECT_EQ(ompi.local_size, 2);
  const auto mpich = from({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}});  // no local variables: one host
  EXPECT_EQ(mpich.rank, 1);
  EXPECT_EQ(mpich.local_rank, 1);
  EXPECT_EQ(mpich.local_size, 2);
  EXPECT_FALSE(from({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}}).distributed());
}

TEST(DistLaunch, MalformedValuesAreOneClearError) {
  EXPECT_THROW(from({{"OMPI_COMM_WORLD_SIZE", "two"}}), Error);
  EXPECT_THROW(from({{"OMPI_COMM_WORLD_SIZE", "0"}}), Error);
  EXPECT_THROW(from({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "2"}}), Error);
  EXPECT_THROW(from({{"PMI_SIZE", "2"}, {"PMI_RANK", "-1"}}), Error);
  try {
    from({{"OMPI_COMM_WORLD_SIZE", "2x"}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_SIZE is '2x', not a rank count"), std::string::npos) << e.what();
  }
}

TEST(DistRankDevice, GpusByLocalRankAndExplicitLists) {
  const std::vector<DeviceInfo> devs = {device(0, 0, "cpu", "pthread-cpu"), device(1, 0, "gpu", "H100 a"),
                                        device(1, 1, "gpu", "H100 b")};
  dist::Launch l;
  l.size = 3;
  l.local_size = 3;
  const std::string want[] = {"1:0", "1:1", "1:0"};  // local rank mod 2 GPUs
  const std::string listed[] = {"1:1", "0:0", "1:0"};
  for (int r = 0; r < 3; ++r) {
    l.rank = l.local_rank = r;
    EXPECT_EQ(dist::rank_device("gpu", l, devs), want[r]) << "rank " << r;
    EXPECT_EQ(dist::rank_device("1:1,0:0,1:0", l, devs), listed[r]);
  }
  EXPECT_EQ(dist::rank_device("cpu", l, devs), "cpu");  // every rank its own PoCL device
  EXPECT_THROW(dist::rank_device("1:0,1:1", l, devs), Error);  // 2 entries for 3 local ranks
  EXPECT_THROW(dist::rank_device("1:0,,1:1", l, devs), Error);
  EXPECT_THROW(dist::rank_device("gpu", l, {devs[0]}), Error);  // no GPU on this host
}

TEST(DistRankDevice, CpuRanksShareTheCores) {
  ::unsetenv("POCL_MAX_PTHREAD_COUNT");
  ::unsetenv("POCL_CPU_MAX_CU_COUNT");
  dist::Launch alone;
  EXPECT_EQ(dist::limit_cpu_threads(alone, 16), 0u);
  EXPECT_EQ(std::getenv("POCL_MAX_PTHREAD_COUNT"), nullptr);
  dist::Launch four;
  four.size = four.local_size = 4;
  EXPECT_EQ(dist::limit_cpu_threads(four, 16), 4u);
  EXPECT_STREQ(std::getenv("POCL_MAX_PTHREAD_COUNT"), "4");
  EXPECT_STREQ(std::getenv("POCL_CPU_MAX_CU_COUNT"), "4");
  ::setenv("POCL_MAX_PTHREAD_COUNT", "3", 1);  // the user's choice stays
  EXPECT_EQ(dist::limit_cpu_threads(four, 2), 3u);
  ::unsetenv("POCL_MAX_PTHREAD_COUNT");
  ::unsetenv("POCL_CPU_MAX_CU_COUNT");
  EXPECT_EQ(dist::limit_cpu_threads(four, 2), 1u);  // at least one thread each
  ::unsetenv("POCL_MAX_PTHREAD_COUNT");
  ::unsetenv("POCL_CPU_MAX_CU_COUNT");
}
