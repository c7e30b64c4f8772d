#include "magellano/dist/launch.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>

#include "magellano/runtime/error.hpp"

namespace magellano::dist {
namespace {

// The value of `name` as a count >= minimum, or `fallback` when unset.
int read_int(const std::function<const char*(const char*)>& getenv, const char* name, int fallback, int minimum) {
  const char* v = getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n < minimum || n > 1000000)
    throw Error(std::string(name) + " is '" + excerpt(v) + "', not " +
                (minimum == 0 ? "a rank number" : "a rank count") + " (set by mpirun; launch with `mpirun -np N`).");
  return int(n);
}

}  // namespace

Launch launch_from(const std::function<const char*(const char*)>& getenv) {
  Launch l;
  for (const auto& names : {std::array<const char*, 4>{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                                        "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
                            std::array<const char*, 4>{"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"}}) {
    if (!getenv(names[1])) continue;
    l.size = read_int(getenv, names[1], 1, 1);
    l.rank = read_int(getenv, names[0], 0, 0);
    l.local_rank = read_int(getenv, names[2], l.rank, 0);
    l.local_size = read_int(getenv, names[3], l.size, 1);
    if (l.rank >= l.size || l.local_rank >= l.local_size)
      throw Error(std::string(names[0]) + " " + std::to_string(l.rank) + " / local " + std::to_string(l.local_rank) +
                  " is out of range for " + std::to_string(l.size) + " ranks (" + std::to_string(l.local_size) +
                  " on this host): the launcher's environment is inconsistent.");
    return l;
  }
  return l;
}

Launch launch_from_environment() {
  return launch_from([](const char* n) { return static_cast<const char*>(std::getenv(n)); });
}

bool built_with_mpi() {
#ifdef MAGELLANO_HAVE_MPI
  return true;
#else
  return false;
#endif
}

}  // namespace magellano::dist
