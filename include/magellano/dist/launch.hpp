// How this process was started: alone, or as one rank of an MPI launch (`mpirun -np N`), read
// from the environment the launcher sets, before MPI itself is started:
//   Open MPI:      OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE
//   MPICH (Hydra): PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS
// No such variable (or a size of 1): a single process, which trains exactly as without MPI.
#pragma once
#include <functional>
#include <string>

namespace magellano::dist {

struct Launch {
  int rank = 0, size = 1;              // this process among all ranks
  int local_rank = 0, local_size = 1;  // ... among the ranks of this host
  bool distributed() const { return size > 1; }
};

// From `getenv` (a function so tests can pass their own). Throws Error for a malformed value
// ("OMPI_COMM_WORLD_SIZE is 'x', not a rank count").
Launch launch_from(const std::function<const char*(const char*)>& getenv);
Launch launch_from_environment();

// Whether this build links an MPI library (CMake found one; MAGELLANO_HAVE_MPI).
bool built_with_mpi();

}  // namespace magellano::dist
