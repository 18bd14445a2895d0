// Map-reduce workloads (the seed's primes, rangesum and factorials), each through mpiproc's
// map_reduce and through the raw-MPI loop a user writes by hand for the same schedule (block
// split; strided cyclic loop; an MPI_Fetch_and_op chunk counter for dynamic and guided), in the
// same run; rows give both times and the ratio mpiproc / raw. The raw side's per-item kernels are
// written here, apart from the programs' (apps/common/workloads.hpp): a kernel both shared would
// hide a slow one.
#include "map_reduce.hpp"

#include "common.hpp"

#include <mpiproc/mpiproc.hpp>
#include <gmp.h>
#include <workloads.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace bench {

namespace {

// ---- Raw MPI: what a user writes by hand for each schedule ---------------------------------------

/// The hand-written per-item kernels: trial division in 32-bit arithmetic where n fits, a GMP
/// factorial's bit length.
std::int64_t hand_prime_or_zero(std::int64_t n) {
  if (n < 2) return 0;
  if (n <= 0xFFFFFFFF) {
    const auto m = static_cast<std::uint32_t>(n);
    for (std::uint32_t d = 2; d <= m / d; ++d)
      if (m % d == 0) return 0;
    return n;
  }
  for (std::int64_t d = 2; d <= n / d; ++d)
    if (n % d == 0) return 0;
  return n;
}

std::int64_t hand_factorial_bits(std::int64_t k) {
  mpz_t f;
  mpz_init(f);
  mpz_fac_ui(f, static_cast<unsigned long>(k));
  const auto bits = static_cast<std::int64_t>(mpz_sizeinbase(f, 2));
  mpz_clear(f);
  return bits;
}

/// Sum of f(i) over [first, last), split as `kind` says, on every rank. Plain MPI calls only.
template <class F>
std::int64_t raw_sum(MPI_Comm comm, std::int64_t first, std::int64_t last, const std::string& kind, F f) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const std::int64_t n = last - first;
  std::int64_t local = 0;
  if (kind == "block" || ((kind == "dynamic" || kind == "guided") && ranks == 1)) {
    const std::int64_t base = n / ranks, extra = n % ranks;
    const std::int64_t lo = first + rank * base + std::min<std::int64_t>(rank, extra);
    const std::int64_t hi = lo + base + (rank < extra ? 1 : 0);
    for (std::int64_t i = lo; i < hi; ++i) local += f(i);
  } else if (kind == "cyclic") {
    for (std::int64_t i = first + rank; i < last; i += ranks) local += f(i);
  } else {
    // A shared counter on rank 0 hands out chunk numbers; every rank works.
    std::vector<std::int64_t> bounds{0};
    if (kind == "dynamic") {
      const std::int64_t chunk = std::max<std::int64_t>(1, n / (ranks * 32));
      for (std::int64_t b = chunk; b < n; b += chunk) bounds.push_back(b);
    } else {
      for (std::int64_t done = 0; done < n;) {
        const std::int64_t left = n - done;
        done += std::min(left, std::max<std::int64_t>(1, (left + 2 * ranks - 1) / (2 * ranks)));
        bounds.push_back(done);
      }
      bounds.pop_back();
    }
    bounds.push_back(n);
    const std::int64_t chunks = static_cast<std::int64_t>(bounds.size()) - 1;
    std::int64_t* counter = nullptr;
    MPI_Win win;
    MPI_Win_allocate(rank == 0 ? sizeof(std::int64_t) : 0, sizeof(std::int64_t), MPI_INFO_NULL, comm, &counter, &win);
    if (rank == 0) *counter = 0;
    MPI_Barrier(comm);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, win);
    const std::int64_t one = 1;
    for (;;) {
      std::int64_t k = 0;
      MPI_Fetch_and_op(&one, &k, MPI_INT64_T, 0, 0, MPI_SUM, win);
      MPI_Win_flush(0, win);
      if (k >= chunks) break;
      const std::int64_t lo = first + bounds[k], hi = first + bounds[k + 1];
      std::int64_t sum = 0;
      for (std::int64_t i = lo; i < hi; ++i) sum += f(i);
      local += sum;
    }
    MPI_Win_unlock_all(win);
    MPI_Win_free(&win);
  }
  std::int64_t total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, comm);
  return total;
}

// ---- The comparison ------------------------------------------------------------------------------

using row = map_reduce_row;

/// Times alternating runs of the raw and the mpiproc version, which goes first swapping each time,
/// and keeps the fastest of each: the figure least disturbed by other load on a shared machine.
/// Short workloads get more runs, so that each version is timed for about a second in all.
/// Each timed run computes the whole sum `repeat` times, as the seed's rangesum does.
template <class F, class Raw>
row compare(const mpiproc::communicator& world, const std::string& name, std::int64_t first, std::int64_t last,
            const std::string& kind, int trials, int repeat, bool raw_available, F f, Raw raw_f) {
  row r{name, kind, std::numeric_limits<double>::max(), std::numeric_limits<double>::max(), true};
  if (!raw_available) r.raw = -1;
  const mpiproc::range<std::int64_t> items{first, last};
  const mpiproc::schedule sched = mpiproc::schedule::from_name(kind);
  auto time_raw = [&] {
    MPI_Barrier(user_comm);
    const double start = MPI_Wtime();
    std::int64_t sum = 0;
    for (int k = 0; k < repeat; ++k) sum += raw_sum(user_comm, first, last, kind, raw_f);
    r.raw = std::min(r.raw, MPI_Wtime() - start);
    return sum;
  };
  auto time_lib = [&] {
    MPI_Barrier(world.native());
    const double start = MPI_Wtime();
    std::int64_t sum = 0;
    for (int k = 0; k < repeat; ++k) sum += mpiproc::map_reduce(world, items, f, std::plus<>{}, sched);
    r.lib = std::min(r.lib, MPI_Wtime() - start);
    return sum;
  };
  for (int t = 0; t < trials; ++t) {
    if (t == 1) {
      // Every rank must run the same number of trials: agree on the slowest first run.
      double first_run = std::max(r.raw, r.lib), slowest = 0;  // r.raw < 0 when there is no raw run
      MPI_Allreduce(&first_run, &slowest, 1, MPI_DOUBLE, MPI_MAX, world.native());
      trials = std::max(trials, std::min(200, static_cast<int>(1.0 / std::max(slowest, 1e-6))));
    }
    if (!raw_available) {
      time_lib();
      continue;
    }
    const std::int64_t raw = t % 2 == 0 ? time_raw() : 0;
    const std::int64_t lib = time_lib();
    const std::int64_t raw_after = t % 2 == 1 ? time_raw() : raw;
    r.same = r.same && raw_after == lib;
  }
  return r;
}

}  // namespace

bool is_map_reduce_workload(const std::string& w) { return w == "primes" || w == "rangesum" || w == "factorials"; }

std::vector<map_reduce_row> compare_map_reduce(const mpiproc::communicator& world, const std::string& w,
                                               const std::vector<std::string>& schedules,
                                               const map_reduce_sizes& sizes, int trials, bool rma) {
  std::vector<row> rows;
  for (const auto& s : schedules) {
    const bool raw = rma || s == "block" || s == "cyclic" || world.size() == 1;
    if (w == "primes")
      rows.push_back(compare(world, w, 1, sizes.primes_n + 1, s, trials, 1, raw, workloads::prime_or_zero,
                             hand_prime_or_zero));
    else if (w == "rangesum")
      rows.push_back(compare(world, w, 0, sizes.sum_last, s, trials, sizes.sum_repeat, raw,
                             [](std::int64_t i) { return i; }, [](std::int64_t i) { return i; }));
    else
      rows.push_back(compare(world, w, 1, sizes.fact_max + 1, s, trials, 1, raw, [](std::int64_t k) {
        return static_cast<std::int64_t>(workloads::factorial_bits(static_cast<unsigned long>(k)));
      }, hand_factorial_bits));
    if (world.rank() == 0) {
      const row& r = rows.back();
      if (r.raw < 0)
        std::printf("%-11s %-8s raw       n/a    mpiproc %9.4f s  (raw needs one-sided MPI, unavailable here)\n",
                    r.workload.c_str(), r.schedule.c_str(), r.lib);
      else
        std::printf("%-11s %-8s raw %9.4f s  mpiproc %9.4f s  ratio %6.3f%s\n", r.workload.c_str(),
                    r.schedule.c_str(), r.raw, r.lib, r.lib / r.raw, r.same ? "" : "  RESULTS DIFFER");
      std::fflush(stdout);
    }
  }
  return rows;
}

}  // namespace bench
