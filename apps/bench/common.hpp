#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <thread>

namespace bench {

/// The communicator the raw-MPI side runs on: the one the bench gives mpiproc (env.world() wraps
/// MPI_COMM_WORLD), as a user's own MPI code does. mpiproc's traffic runs on its private
/// duplicates of it, so the raw side's sends and receives never meet mpiproc's.
inline const MPI_Comm user_comm = MPI_COMM_WORLD;

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

/// Collective: whether one-sided MPI works here (the raw dynamic and guided loops and the raw
/// shared state need it). Over plain TCP, Open MPI's defaults refuse MPI_Win_allocate on every
/// rank; mpiproc then uses messages.
inline bool raw_rma_works(MPI_Comm comm) {
  MPI_Comm probe;
  MPI_Comm_dup(comm, &probe);
  MPI_Comm_set_errhandler(probe, MPI_ERRORS_RETURN);
  std::int64_t* base = nullptr;
  MPI_Win win = MPI_WIN_NULL;
  const int mine = MPI_Win_allocate(sizeof(std::int64_t), sizeof(std::int64_t), MPI_INFO_NULL, probe, &base, &win) == MPI_SUCCESS;
  int everywhere = 0;
  MPI_Allreduce(&mine, &everywhere, 1, MPI_INT, MPI_MIN, comm);
  if (mine) MPI_Win_free(&win);
  MPI_Comm_free(&probe);
  return everywhere;
}

}  // namespace bench
