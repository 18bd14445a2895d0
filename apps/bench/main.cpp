// bench: the seed workloads through mpiproc and through hand-written raw MPI in the same run, per
// schedule, printing both times and the ratio mpiproc / raw; then shared state (a counter's
// fetch_add, a lock pair, a locked increment) in operations per second next to raw MPI's, and the
// channels (channels.cpp): pipe round trip and bandwidth, queue items, dict updates. A
// benchmark, not a test: it asserts no timing, only that both ways compute the same answer.
#include "channels.hpp"

#include <app.hpp>
#include <workloads.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <limits>
#include <string>
#include <vector>

namespace {

// ---- Raw MPI: what a user writes by hand for each schedule ---------------------------------------

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

/// Whether one-sided MPI works here (the raw dynamic and guided loops need it). Over plain TCP,
/// Open MPI's defaults refuse MPI_Win_allocate on every rank; mpiproc then uses messages.
bool raw_rma_works(MPI_Comm comm) {
  MPI_Comm probe;
  MPI_Comm_dup(comm, &probe);
  MPI_Comm_set_errhandler(probe, MPI_ERRORS_RETURN);
  std::int64_t* base = nullptr;
  MPI_Win win = MPI_WIN_NULL;
  const int mine = MPI_Win_allocate(sizeof(std::int64_t), sizeof(std::int64_t), MPI_INFO_NULL, probe, &base, &win) == MPI_SUCCESS;
  int everywhere = 0;
  MPI_Allreduce(&mine, &everywhere, 1, MPI_INT, MPI_MIN, comm);
  if (mine) MPI_Win_free(&win);
  MPI_Comm_free(&probe);
  return everywhere;
}

// ---- The comparison ------------------------------------------------------------------------------

struct row {
  std::string workload, schedule;
  double raw = 0, lib = 0;  // raw < 0: no raw version here
  bool same = true;
};

/// Times alternating runs of the raw and the mpiproc version, which goes first swapping each time,
/// and keeps the fastest of each: the figure least disturbed by other load on a shared machine.
/// Short workloads get more runs, so that each version is timed for about a second in all.
/// Each timed run computes the whole sum `repeat` times, as the seed's rangesum does.
template <class F>
row compare(const mpiproc::communicator& world, const std::string& name, std::int64_t first, std::int64_t last,
            const std::string& kind, int trials, int repeat, bool raw_available, F f) {
  row r{name, kind, std::numeric_limits<double>::max(), std::numeric_limits<double>::max(), true};
  if (!raw_available) r.raw = -1;
  const mpiproc::range<std::int64_t> items{first, last};
  const mpiproc::schedule sched = mpiproc::schedule::from_name(kind);
  auto time_raw = [&] {
    MPI_Barrier(world.native());
    const double start = MPI_Wtime();
    std::int64_t sum = 0;
    for (int k = 0; k < repeat; ++k) sum += raw_sum(world.native(), first, last, kind, f);
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

// ---- Shared state: operations per second, mpiproc next to raw MPI -------------------------------

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
  const MPI_Comm comm = world.native();
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

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Time the seed workloads through mpiproc and through hand-written raw MPI, per schedule,\n"
               "and print the ratio mpiproc / raw (1.00 = no overhead).\n"
               "Example: mpirun -np 4 bench --trials 3",
               "bench"};
  std::int64_t primes_n = 10'000'000, sum_last = 50'000'000, fact_max = 12'000;
  int sum_repeat = 2, trials = 5;
  std::string workloads_list = "primes,rangesum,factorials,counter,lock,lock_incr,pipe_rtt,pipe_bw,queue,dict", schedules_list = "block,cyclic,dynamic,guided";
  cli.add_option("--primes", primes_n, "N for primes in [1, N]")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1} << 40))->capture_default_str();
  cli.add_option("--rangesum", sum_last, "rangesum sums [0, this)")->transform(app::whole_number(std::int64_t{1}, std::numeric_limits<std::int64_t>::max()))->capture_default_str();
  cli.add_option("--rangesum-repeat", sum_repeat, "rangesum repeats per run (the seed: 2)")->transform(app::whole_number(1, 1000))->capture_default_str();
  cli.add_option("--factorials", fact_max, "K for factorials of [1, K]")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1'000'000}))->capture_default_str();
  cli.add_option("--trials", trials, "Runs of each version; the fastest counts")->transform(app::whole_number(1, 100))->capture_default_str();
  cli.add_option("--workloads", workloads_list,
                 "Comma-separated: primes, rangesum, factorials (per schedule); counter (fetch_add), lock (lock + "
                 "unlock), lock_incr (locked increment); pipe_rtt, pipe_bw (1 MiB), queue (1 producer), dict "
                 "(atomic updates), which need 2 ranks")
      ->check(app::name_list(
          [](const std::string& w) {
            return w == "primes" || w == "rangesum" || w == "factorials" || w == "counter" || w == "lock" ||
                   w == "lock_incr" || bench::is_channel_workload(w);
          },
          "workload"))
      ->capture_default_str();
  cli.add_option("--schedules", schedules_list, "Comma-separated: block, cyclic, dynamic, guided")
      ->check(app::name_list(
          [](const std::string& s) { return s == "block" || s == "cyclic" || s == "dynamic" || s == "guided"; },
          "schedule"))
      ->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "bench", [&] {
    std::vector<row> rows;
    const bool rma = raw_rma_works(world.native());
    for (const auto& w : app::split_list(workloads_list)) {
      if (bench::is_channel_workload(w)) {
        bench::compare_channel(world, w, trials);
        continue;
      }
      if (w == "counter" || w == "lock" || w == "lock_incr") {
        if (!rma && world.size() == 1) continue;  // nobody to ask: rank 0 would serve itself
        const rate_row r = compare_shared(world, w, rma, trials);
        if (world.rank() == 0) {
          std::printf("%-11s %-8s raw %9.3f M/s  mpiproc %9.3f M/s  time ratio %6.3f  (raw: %s)\n", r.workload.c_str(),
                      w == "counter" ? "fetch_add" : w == "lock" ? "pair" : "incr", r.raw / 1e6, r.lib / 1e6, r.raw / r.lib, r.raw_how.c_str());
          std::fflush(stdout);
        }
        continue;
      }
      for (const auto& s : app::split_list(schedules_list)) {
        const bool raw = rma || s == "block" || s == "cyclic" || world.size() == 1;
        if (w == "primes")
          rows.push_back(compare(world, w, 1, primes_n + 1, s, trials, 1, raw, workloads::prime_or_zero));
        else if (w == "rangesum")
          rows.push_back(compare(world, w, 0, sum_last, s, trials, sum_repeat, raw, [](std::int64_t i) { return i; }));
        else
          rows.push_back(compare(world, w, 1, fact_max + 1, s, trials, 1, raw, [](std::int64_t k) {
            return static_cast<std::int64_t>(workloads::factorial_bits(static_cast<unsigned long>(k)));
          }));
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
    }
    if (world.rank() == 0) std::printf("ranks: %d  at least %d runs of each version (more for short workloads), fastest kept\n", world.size(), trials);
    for (const row& r : rows)
      if (!r.same) throw std::runtime_error("mpiproc and raw MPI disagree on " + r.workload + "/" + r.schedule);
  });
}
