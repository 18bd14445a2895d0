#pragma once

#include <mpiproc/communicator.hpp>

#include <mpi.h>

#include <chrono>
#include <string>
#include <thread>

namespace bench {

/// Collective: the longest of the ranks' `seconds`. Ranks with no part in a run (`idle`) wait for
/// it without spinning, as ranks busy with their own work would, leaving the cores to the ranks
/// measured and to the service threads that answer them.
inline double slowest(MPI_Comm comm, double seconds, bool idle) {
  MPI_Request done = MPI_REQUEST_NULL;
  MPI_Ibarrier(comm, &done);
  for (int finished = 0; !finished;) {
    MPI_Test(&done, &finished, MPI_STATUS_IGNORE);
    if (!finished && idle) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  double worst = 0;
  MPI_Allreduce(&seconds, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
  return worst;
}

/// Whether `workload` is one of the channel workloads: pipe_rtt, pipe_bw, queue, dict.
bool is_channel_workload(const std::string& workload);

/// Times a channel workload through mpiproc and through raw MPI, alternating, best of `trials`
/// each, and prints one row on rank 0. Needs 2 ranks (prints nothing on 1).
void compare_channel(const mpiproc::communicator& world, const std::string& workload, int trials);

}  // namespace bench
