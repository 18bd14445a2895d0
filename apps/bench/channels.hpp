#pragma once

#include <mpiproc/communicator.hpp>

#include <string>

namespace bench {

/// Whether `workload` is one of the channel workloads: pipe_rtt, pipe_bw, queue, dict.
bool is_channel_workload(const std::string& workload);

/// Times a channel workload through mpiproc and through raw MPI, alternating, best of `trials`
/// each, and prints one row on rank 0. Needs 2 ranks (prints nothing on 1).
void compare_channel(const mpiproc::communicator& world, const std::string& workload, int trials);

}  // namespace bench
