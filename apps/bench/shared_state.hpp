#pragma once

#include <mpiproc/communicator.hpp>

#include <string>

namespace bench {

/// Whether `workload` is one of the shared-state workloads: counter, lock, lock_incr.
bool is_shared_state_workload(const std::string& workload);

/// Collective: times a shared-state workload through mpiproc and through raw MPI, alternating,
/// best of `trials` each, and prints one row on rank 0 in operations per second. Raw MPI is
/// one-sided where `rma`, otherwise round trips to rank 0 (then it needs 2 ranks: prints nothing
/// on 1).
void compare_shared_state(const mpiproc::communicator& world, const std::string& workload, bool rma, int trials);

}  // namespace bench
