#pragma once

// Helpers for checking global invariants with plain MPI, independent of the code under test.

#include <mpiproc/communicator.hpp>
#include <mpiproc/schedule.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace test {

/// The communicator every test uses (created collectively on first use).
inline const mpiproc::communicator& world() {
  static const mpiproc::communicator comm{MPI_COMM_WORLD};
  return comm;
}

/// Seconds elapsed on this rank since `start`.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Every rank's values, concatenated in rank order, on every rank.
inline std::vector<std::int64_t> all_gather(const std::vector<std::int64_t>& mine, MPI_Comm comm = MPI_COMM_WORLD) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  const int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  int total = 0;
  for (int r = 0; r < size; ++r) {
    displs[static_cast<std::size_t>(r)] = total;
    total += counts[static_cast<std::size_t>(r)];
  }
  std::vector<std::int64_t> all(static_cast<std::size_t>(total));
  MPI_Allgatherv(mine.data(), count, MPI_INT64_T, all.data(), counts.data(), displs.data(), MPI_INT64_T, comm);
  return all;
}

/// The same value on every rank? (min == max over the ranks)
inline bool same_everywhere(std::int64_t value) {
  std::int64_t lo = 0, hi = 0;
  MPI_Allreduce(&value, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&value, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

/// Every schedule kind, with automatic and small chunk sizes.
inline std::vector<mpiproc::schedule> every_schedule() {
  using mpiproc::schedule;
  return {schedule::block(),    schedule::cyclic(),   schedule::cyclic(3), schedule::dynamic(),
          schedule::dynamic(1), schedule::dynamic(7), schedule::guided(),  schedule::guided(4)};
}

/// "dynamic(7)", for failure messages.
inline std::string describe(const mpiproc::schedule& s) {
  return std::string(s.name()) + "(" + std::to_string(s.chunk()) + ")";
}

/// The sum of every rank's `mine`, on every rank.
inline std::int64_t sum_over_ranks(std::int64_t mine, MPI_Comm comm = MPI_COMM_WORLD) {
  std::int64_t total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, comm);
  return total;
}

}  // namespace test
