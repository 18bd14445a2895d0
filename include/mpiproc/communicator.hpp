#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <utility>

namespace mpiproc {

namespace detail {
class communicator_state;
}  // namespace detail

/// The ranks an mpiproc operation runs on. Wraps a private duplicate of the caller's
/// communicator, so mpiproc's messages never mix with the user's own: the user's own sends and
/// receives stay on the communicator passed in. Copies share the duplicate; it is freed when the
/// last copy goes.
class communicator {
 public:
  /// Collective over `comm`: duplicates it (MPI_Comm_dup) and sets MPI_ERRORS_RETURN on the duplicate.
  /// Throws usage_error if MPI is not initialized or `comm` is MPI_COMM_NULL.
  explicit communicator(MPI_Comm comm = MPI_COMM_WORLD);

  /// This rank's number in [0, size()).
  int rank() const noexcept;
  /// The number of ranks.
  int size() const noexcept;
  /// The private duplicate that mpiproc's own parts run on. A caller may run collectives on it
  /// (MPI_Barrier, MPI_Reduce...) between mpiproc calls, since collectives never match
  /// point-to-point messages; the caller's own sends and receives belong on the communicator
  /// passed in, where mpiproc's never arrive.
  MPI_Comm native() const noexcept;
  /// Collective: waits until every rank has called it.
  void barrier() const;

  /// mpiproc's own state for these ranks (its duplicates, the schedule counter, the tags of its
  /// objects), for mpiproc's parts; opaque to users.
  detail::communicator_state& state() const noexcept { return *state_; }

 private:
  std::shared_ptr<detail::communicator_state> state_;
};

}  // namespace mpiproc
