// Shared-state workloads in operations per second, all working ranks together, next to raw MPI
// as a user writes it by hand, in the same run:
// - counter: counter::fetch_add (raw: MPI_Fetch_and_op);
// - lock: a lock taken and released (raw: an exclusive MPI_Win_lock + MPI_Win_unlock);
// - lock_incr: the seed's locked increment, lock, value load and store, unlock (raw: the same
//   around MPI_Get / MPI_Put).
// Where one-sided MPI does not work, raw MPI makes a send/recv round trip to rank 0 instead.
#include "shared_state.hpp"

#include "common.hpp"

#include <mpiproc/mpiproc.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

namespace bench {

namespace {

/// Raw MPI's shared counter on rank 0, updated the way a user writes it by hand: one-sided
/// (MPI_Fetch_and_op, or an exclusive MPI_Win_lock around get/put) where one-sided MPI works;
/// otherwise a round trip to rank 0, which serves requests in a loop.
class raw_counter {
 public:
  raw_counter(MPI_Comm comm, bool rma) : comm_(comm), rma_(rma) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &ranks_);
    if (!rma_) return;
    MPI_Win_allocate(rank_ == 0 ? sizeof(std::int64_t) : 0, sizeof(std::int64_t), MPI_INFO_NULL, comm, &atomic_base_, &atomic_);
    MPI_Win_allocate(rank_ == 0 ? sizeof(std::int64_t) : 0, sizeof(std::int64_t), MPI_INFO_NULL, comm, &locked_base_, &locked_);
    if (rank_ == 0) *atomic_base_ = *locked_base_ = 0;
    MPI_Barrier(comm);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, atomic_);
  }
  ~raw_counter() {
    if (!rma_) return;
    MPI_Win_unlock_all(atomic_);
    MPI_Win_free(&atomic_);
    MPI_Win_free(&locked_);
  }
  raw_counter(const raw_counter&) = delete;
  raw_counter& operator=(const raw_counter&) = delete;

  /// Whether this rank makes requests (without one-sided MPI, rank 0 serves instead).
  bool works() const { return rma_ || rank_ != 0; }
  int workers() const { return rma_ ? ranks_ : ranks_ - 1; }

  void fetch_add() {
    const std::int64_t one = 1;
    std::int64_t old = 0;
    if (rma_) {
      MPI_Fetch_and_op(&one, &old, MPI_INT64_T, 0, 0, MPI_SUM, atomic_);
      MPI_Win_flush(0, atomic_);
    } else {
      round_trip();
    }
  }
  /// An exclusive lock taken and given back, with nothing done under it.
  void lock_pair() {
    if (!rma_) return round_trip();
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, locked_);
    MPI_Win_unlock(0, locked_);
  }
  void locked_increment() {
    if (!rma_) return round_trip();
    std::int64_t v = 0;
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, locked_);
    MPI_Get(&v, 1, MPI_INT64_T, 0, 0, 1, MPI_INT64_T, locked_);
    MPI_Win_flush(0, locked_);
    ++v;
    MPI_Put(&v, 1, MPI_INT64_T, 0, 0, 1, MPI_INT64_T, locked_);
    MPI_Win_unlock(0, locked_);
  }
  /// Rank 0 without one-sided MPI: answers `requests` round trips, adding 1 for each.
  void serve(long requests) {
    if (rma_ || rank_ != 0) return;
    for (long k = 0; k < requests; ++k) {
      std::int64_t dummy = 0;
      MPI_Status status;
      MPI_Recv(&dummy, 1, MPI_INT64_T, MPI_ANY_SOURCE, 7, comm_, &status);
      ++served_;
      MPI_Send(&served_, 1, MPI_INT64_T, status.MPI_SOURCE, 8, comm_);
    }
  }
  const char* how(const std::string& workload) const {
    if (!rma_) return "send/recv round trip";
    return workload == "counter" ? "MPI_Fetch_and_op" : workload == "lock" ? "Win_lock + Win_unlock" : "Win_lock + get/put";
  }

 private:
  void round_trip() {
    std::int64_t request = 1, reply = 0;
    MPI_Send(&request, 1, MPI_INT64_T, 0, 7, comm_);
    MPI_Recv(&reply, 1, MPI_INT64_T, 0, 8, comm_, MPI_STATUS_IGNORE);
  }

  MPI_Comm comm_;
  bool rma_;
  int rank_ = 0, ranks_ = 1;
  MPI_Win atomic_ = MPI_WIN_NULL, locked_ = MPI_WIN_NULL;
  std::int64_t* atomic_base_ = nullptr;
  std::int64_t* locked_base_ = nullptr;
  std::int64_t served_ = 0;
};

struct rate_row {
  std::string workload, raw_how;
  double raw = 0, lib = 0;  // operations per second, all working ranks together
};

/// Times `ops` operations on every working rank after a barrier (the others run `otherwise`);
/// returns the seconds.
template <class Op, class Otherwise>
double time_ops(MPI_Comm comm, bool works, long ops, Op op, Otherwise otherwise) {
  MPI_Barrier(comm);
  const double start = MPI_Wtime();
  if (works)
    for (long k = 0; k < ops; ++k) op();
  else
    otherwise();
  return MPI_Wtime() - start;
}

/// Counter fetch_add, a lock taken and released, or a locked increment (lock, load, store, unlock; the
/// seed's counter), raw and through mpiproc,
/// alternating; each timed run lasts about 0.2 s and the best rate of each counts. The same ranks
/// work in both versions (without one-sided MPI, all but rank 0, which serves raw MPI's requests).
rate_row compare_shared(const mpiproc::communicator& world, const std::string& workload, bool rma, int trials) {
  const MPI_Comm comm = user_comm;
  raw_counter raw(comm, rma);
  mpiproc::counter counter(world);
  mpiproc::lock lock(world);
  mpiproc::value<std::int64_t> value(world);
  const bool works = raw.works();
  rate_row r{workload, raw.how(workload), 0, 0};
  long ops = 200;
  long lib_done = 0;
  auto run = [&](bool lib) {
    double seconds = 0;
    if (lib) {
      seconds = time_ops(comm, works, ops, [&] {
        if (workload == "counter") {
          counter.fetch_add(1);
        } else if (workload == "lock") {
          lock.lock();
          lock.unlock();
        } else {
          std::lock_guard guard(lock);
          value.store(value.load() + 1);
        }
      }, [] {});
      lib_done += ops;
    } else {
      seconds = time_ops(comm, works, ops, [&] {
        if (workload == "counter")
          raw.fetch_add();
        else if (workload == "lock")
          raw.lock_pair();
        else
          raw.locked_increment();
      },
                         [&] { raw.serve(ops * raw.workers()); });
    }
    const double slowest = bench::slowest(comm, seconds, !works);
    const double rate = static_cast<double>(ops) * raw.workers() / slowest;
    (lib ? r.lib : r.raw) = std::max(lib ? r.lib : r.raw, rate);
    return slowest;
  };
  // A first short run of each sizes the rest to about 0.2 s.
  const double first = std::max(run(false), run(true));
  ops = std::clamp(static_cast<long>(ops * 0.2 / std::max(first, 1e-6)), 200L, 50'000'000L);
  for (int t = 0; t < trials; ++t) {
    run(t % 2 == 1);
    run(t % 2 == 0);
  }
  // Both must have counted every operation.
  const std::int64_t lib_total = workload == "counter" ? counter.load() : workload == "lock_incr" ? value.load() : lib_done * raw.workers();
  if (lib_total != lib_done * raw.workers())
    throw std::runtime_error("mpiproc's " + workload + " counted " + std::to_string(lib_total) + ", not " +
                             std::to_string(lib_done * raw.workers()));
  return r;
}

}  // namespace

bool is_shared_state_workload(const std::string& w) { return w == "counter" || w == "lock" || w == "lock_incr"; }

void compare_shared_state(const mpiproc::communicator& world, const std::string& w, bool rma, int trials) {
  if (!rma && world.size() == 1) return;  // nobody to ask: rank 0 would serve itself
  const rate_row r = compare_shared(world, w, rma, trials);
  if (world.rank() == 0) {
    std::printf("%-11s %-8s raw %9.3f M/s  mpiproc %9.3f M/s  time ratio %6.3f  (raw: %s)\n", r.workload.c_str(),
                w == "counter" ? "fetch_add" : w == "lock" ? "pair" : "incr", r.raw / 1e6, r.lib / 1e6, r.raw / r.lib, r.raw_how.c_str());
    std::fflush(stdout);
  }
}

}  // namespace bench
