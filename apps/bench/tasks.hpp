#pragma once

#include <mpiproc/communicator.hpp>

#include <cstdint>
#include <string>

namespace bench {

/// Whether `workload` is the task pool's: tasks.
bool is_task_workload(const std::string& workload);

/// Collective: empty tasks through a task_pool, next to raw MPI in the same run, best of `trials`:
/// throughput (submit + get) from rank 0 alone and from every rank, against a hand-written MPI
/// task farm; the round trip of one task run on another rank, against an MPI send/recv round
/// trip; and one task submitted and run on the same rank. One row each on rank 0.
void compare_tasks(const mpiproc::communicator& world, std::int64_t tasks, int trials);

}  // namespace bench
