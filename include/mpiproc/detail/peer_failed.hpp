#pragma once

#include <mpiproc/error.hpp>

namespace mpiproc::detail {

/// A wait ended because another rank failed in a collective call (see registry.hpp's
/// break_shared_state). The failure agreement names the rank that failed for a reason of its own,
/// not the ranks that got this.
class peer_failed : public error {
 public:
  explicit peer_failed(int rank);
  /// The rank whose failure broke the shared state.
  int rank() const noexcept { return rank_; }

 private:
  int rank_;
};

}  // namespace mpiproc::detail
