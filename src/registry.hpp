#pragma once

// Everything of mpiproc's that holds MPI resources, in one process-wide list keyed by the
// communicator it was made on: the list frees what is left at MPI_Finalize and breaks what ranks
// wait on when a rank fails.

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace mpiproc::detail {

/// An object that holds MPI resources (a communicator's duplicates, a segment, a pipe).
class registered {
 public:
  virtual ~registered() = default;
  /// Frees its MPI resources (collective, as the objects are made): run at the start of
  /// MPI_Finalize for whatever is still registered then, newest first, so that objects that
  /// outlive the environment (or were dropped while an exception unwound) are freed while MPI
  /// still works. Objects are made collectively, so every rank frees them in the same order.
  virtual void release() noexcept = 0;
  /// Makes waits on it that would block, on every rank, now or later, throw
  /// peer_failed(failed_rank). Nothing by default (nobody waits on it).
  virtual void poison(int /*failed_rank*/) noexcept {}
};

/// How a collective object ends on every rank together, or on none: its ranks vote, and a rank
/// that leaves while an exception unwinds (abandon) votes no without waiting for the others, so
/// that their vote does not wait for it; the object then stays until MPI_Finalize. Keep the vote
/// alive until then once abandoned: MPI still writes its buffers.
class release_vote {
 public:
  /// Collective but never stranded (polled): whether every rank frees the object.
  bool all_free(MPI_Comm comm) noexcept;
  /// Not collective: this rank votes no.
  void abandon(MPI_Comm comm) noexcept;
  bool abandoned() const noexcept { return abandoned_; }

 private:
  bool abandoned_ = false;
  int vote_ = 0, result_ = 0;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

/// Notes that this rank saw an object broken by a failure (`mark`: 1 + the failed rank, as
/// poison() marks it), and throws peer_failed naming that rank.
[[noreturn]] void fail_broken(std::atomic<bool>& seen_broken, std::uint64_t mark);

/// Keeps `thing` (alive) until withdraw(id) or MPI_Finalize; `comm` is the communicator it was made
/// on, for break_shared_state. Returns the id for withdraw.
std::uint64_t enroll(MPI_Comm comm, std::shared_ptr<registered> thing);

/// Drops what enroll kept (the object freed itself).
void withdraw(std::uint64_t id) noexcept;

/// Poisons everything made on `comm`. Called (by run_collectively) on a rank whose part of a
/// collective call failed, so that ranks waiting for it on a lock, event, barrier, queue, pipe...
/// do not wait forever but reach the failure agreement. Never throws.
void break_shared_state(MPI_Comm comm, int failed_rank) noexcept;

/// Whether MPI_Finalize has begun (or finished): MPI objects may no longer be used.
bool mpi_finalizing() noexcept;
/// The same in one atomic load, for hot paths: exact once anything is enrolled (a communicator
/// is), as MPI_Finalize then tells the registry first.
bool finalize_begun() noexcept;

}  // namespace mpiproc::detail
