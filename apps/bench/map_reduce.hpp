#pragma once

#include <mpiproc/communicator.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

/// Whether `workload` is one of the map-reduce workloads: primes, rangesum, factorials.
bool is_map_reduce_workload(const std::string& workload);

/// The size of each map-reduce workload.
struct map_reduce_sizes {
  std::int64_t primes_n = 10'000'000;    // primes in [1, primes_n]
  std::int64_t sum_last = 50'000'000;    // rangesum over [0, sum_last)
  int sum_repeat = 2;                    // rangesum's sums per timed run (the seed's)
  std::int64_t fact_max = 12'000;        // factorials of [1, fact_max]
};

/// One workload under one schedule: the fastest time of each version.
struct map_reduce_row {
  std::string workload, schedule;
  double raw = 0, lib = 0;  // raw < 0: no raw version here
  bool same = true;         // whether both versions computed the same answer every time
};

/// Collective: times `workload` through mpiproc's map_reduce and through hand-written raw MPI
/// under each of `schedules`, alternating, and prints one row per schedule on rank 0. The raw
/// dynamic and guided loops need one-sided MPI (`rma`); without it they show n/a.
std::vector<map_reduce_row> compare_map_reduce(const mpiproc::communicator& world, const std::string& workload,
                                               const std::vector<std::string>& schedules,
                                               const map_reduce_sizes& sizes, int trials, bool rma);

}  // namespace bench
