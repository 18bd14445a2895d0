#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <cstdint>
#include <memory>

namespace mpiproc {

/// A reusable barrier (Python's multiprocessing.Barrier): wait() returns once `parties` calls
/// have arrived, round after round. Unlike MPI_Barrier, the parties need not be all the ranks:
/// any ranks may make the calls, a rank even several in one round.
class barrier {
 public:
  /// Collective over `comm`: one party per rank.
  explicit barrier(const communicator& comm);
  /// Collective over `comm`: `parties` calls make a round (usage_error if 0).
  barrier(const communicator& comm, std::uint64_t parties);

  /// Waits for the rest of this round; returns this call's place in it, 0 to parties - 1.
  std::uint64_t wait();
  std::uint64_t parties() const noexcept { return parties_; }

 private:
  std::unique_ptr<detail::shared_segment> arrivals_;  // one word on rank 0: calls ever made
  std::uint64_t parties_;
};

}  // namespace mpiproc
