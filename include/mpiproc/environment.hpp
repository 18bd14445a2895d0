#pragma once

#include <mpiproc/communicator.hpp>

namespace mpiproc {

/// RAII owner of MPI's lifetime: initializes MPI with the thread level mpiproc needs and
/// finalizes it on destruction. If the host program already initialized MPI, it does neither,
/// so HPC codes can link mpiproc without handing over MPI_Init.
class environment {
 public:
  /// Collective over MPI_COMM_WORLD when it initializes MPI.
  environment();
  environment(int& argc, char**& argv);
  /// Finalizes MPI if this object initialized it; if an exception is escaping then (a rank is
  /// dying), aborts every rank instead, so that none is left waiting in a collective. An
  /// environment over a host's MPI does neither: the host owns MPI's end.
  ~environment();
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;

  /// Collective: a communicator over all ranks (a duplicate of MPI_COMM_WORLD).
  communicator world() const { return communicator{MPI_COMM_WORLD}; }
  /// The thread support MPI granted (MPI_THREAD_*).
  int thread_level() const noexcept { return thread_level_; }
  /// Whether this object called MPI_Init (and so will call MPI_Finalize).
  bool owns_mpi() const noexcept { return owns_; }

  /// The thread level mpiproc asks for when it initializes MPI: MPI_THREAD_MULTIPLE, because over
  /// several nodes the dynamic schedules' counter is served by a thread of its own (so a chunk is
  /// handed out while the owner rank computes). A host that initialized MPI itself at a lower level
  /// works too, except for dynamic and guided schedules over several nodes (a usage_error).
  static constexpr int requested_thread_level = MPI_THREAD_MULTIPLE;

 private:
  void init(int* argc, char*** argv);
  bool owns_ = false;
  int thread_level_ = MPI_THREAD_SINGLE;
  int uncaught_at_start_ = 0;
};

}  // namespace mpiproc
