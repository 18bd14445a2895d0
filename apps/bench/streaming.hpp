#pragma once

#include <mpiproc/communicator.hpp>

#include <cstdint>
#include <string>

namespace bench {

/// Whether `workload` is the streaming workload: imap.
bool is_streaming_workload(const std::string& workload);

/// Collective: x*x over [0, n) with every result reaching rank 0, which sums them: through a
/// collective map (every result at the end), imap_unordered and imap (as they come), and a
/// hand-written raw-MPI stream; best of `trials` each, alternating, one row each on rank 0 with
/// items/s, the ratio to map, and how much rank 0's peak memory grew.
void compare_streaming(const mpiproc::communicator& world, std::int64_t n, int trials);

}  // namespace bench
