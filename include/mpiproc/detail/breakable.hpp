#pragma once

#include <mpiproc/error.hpp>

#include <mpi.h>

#include <memory>

namespace mpiproc::detail {

/// A wait ended because another rank failed in a collective call (break_shared_state). The failure
/// agreement names the rank that failed for a reason of its own, not the ranks that got this.
class peer_failed : public error {
 public:
  explicit peer_failed(int rank);
  /// The rank whose failure broke the shared state.
  int rank() const noexcept { return rank_; }

 private:
  int rank_;
};

/// Shared state that ranks wait on (segments, pipes): a failure on one rank must end those waits.
class breakable {
 public:
  virtual ~breakable() = default;
  /// Makes waits that would block, on every rank, now or later, throw peer_failed(failed_rank).
  virtual void poison(int failed_rank) noexcept = 0;
};

/// Remembers `thing` (while it lives) as made on `comm`, for break_shared_state.
void register_breakable(MPI_Comm comm, std::weak_ptr<breakable> thing);

/// Breaks all shared state made on `comm` (see breakable). Called (by run_collectively) on a rank
/// whose part of a collective call failed, so that ranks waiting for it on a lock, event, barrier,
/// queue, pipe... do not wait forever but reach the failure agreement. Never throws.
void break_shared_state(MPI_Comm comm, int failed_rank) noexcept;

}  // namespace mpiproc::detail
