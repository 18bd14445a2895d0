#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <utility>

namespace mpiproc {

namespace detail {
struct communicator_state;
class call_monitor;
class chunk_counter;
class chunk_source;
class pipe_channel;
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

 private:
  friend class detail::call_monitor;
  friend class detail::chunk_source;
  friend class detail::pipe_channel;
  /// Collective: a communicator for channels (a second private duplicate, made on first use) and a
  /// number for a new channel on it, the same on every rank.
  std::pair<MPI_Comm, std::uint64_t> new_channel() const;
  /// The shared counter behind the dynamic and guided schedules, created on first use (collective).
  detail::chunk_counter& chunk_counter() const;
  bool has_chunk_counter() const noexcept;
  /// Collective, at the start of every map call (see chunk_source::prepare): counts the call and,
  /// on the first over several ranks, makes the communicator for the messages of calls with
  /// progress or a time limit (a private duplicate, so that they never meet the user's).
  void begin_map_call() const;
  /// That communicator and the number of the map call running, the same on every rank.
  std::pair<MPI_Comm, std::uint64_t> map_call_channel() const;

  std::shared_ptr<detail::communicator_state> state_;
};

}  // namespace mpiproc
