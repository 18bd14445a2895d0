// The task pool's costs on empty tasks (x -> x), each next to what a user writes by hand with
// raw MPI in the same run:
// - throughput, one submitter: rank 0 submits `tasks` tasks and gets them all while the other
//   ranks are in close(), taking tasks from its queue (raw: a task farm, rank 0 sends each task's
//   8 bytes to a worker and a new one as each result comes back, 64 in flight per worker);
// - throughput, every rank: each submits tasks / P and gets them (raw: none; the farm's row is
//   the reference);
// - round trip: rank 0 submits one task placed on the last rank and gets it, in close() there
//   (raw: an 8-byte MPI_Send / MPI_Recv ping-pong between the same ranks); the row says how many
//   of the tasks the last rank ran (all: a placed task runs on its rank);
// - local: one task submitted and got on rank 0 alone (no raw form).
#include "tasks.hpp"

#include "common.hpp"

#include <mpiproc/mpiproc.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

namespace {

constexpr int farm_window = 64;

/// The hand-written task farm: rank 0 hands out tasks (numbers), the others return x.
std::int64_t raw_farm(MPI_Comm comm, std::int64_t tasks) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const std::int64_t stop = -1;
  if (rank != 0) {
    for (std::int64_t x = 0;;) {
      MPI_Recv(&x, 1, MPI_INT64_T, 0, 11, comm, MPI_STATUS_IGNORE);
      if (x == stop) return 0;
      MPI_Send(&x, 1, MPI_INT64_T, 0, 12, comm);
    }
  }
  std::int64_t next = 0, sum = 0, done = 0;
  for (int w = 1; w < ranks; ++w)
    for (int k = 0; k < farm_window && next < tasks; ++k, ++next) MPI_Send(&next, 1, MPI_INT64_T, w, 11, comm);
  while (done < next) {
    std::int64_t result = 0;
    MPI_Status status;
    MPI_Recv(&result, 1, MPI_INT64_T, MPI_ANY_SOURCE, 12, comm, &status);
    sum += result;
    ++done;
    if (next < tasks) {
      MPI_Send(&next, 1, MPI_INT64_T, status.MPI_SOURCE, 11, comm);
      ++next;
    }
  }
  for (int w = 1; w < ranks; ++w) MPI_Send(&stop, 1, MPI_INT64_T, w, 11, comm);
  return sum;
}

/// Seconds per round trip of an 8-byte ping-pong between rank 0 and the last rank.
double raw_round_trip(MPI_Comm comm, int rounds) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const int last = ranks - 1;
  std::int64_t token = 0;
  MPI_Barrier(comm);
  const double start = MPI_Wtime();
  for (int k = 0; k < rounds; ++k) {
    if (rank == 0) {
      MPI_Send(&token, 1, MPI_INT64_T, last, 13, comm);
      MPI_Recv(&token, 1, MPI_INT64_T, last, 13, comm, MPI_STATUS_IGNORE);
    } else if (rank == last) {
      MPI_Recv(&token, 1, MPI_INT64_T, 0, 13, comm, MPI_STATUS_IGNORE);
      MPI_Send(&token, 1, MPI_INT64_T, 0, 13, comm);
    }
  }
  return (MPI_Wtime() - start) / rounds;
}

struct row {
  const char* name;
  double lib, raw;     // seconds; raw < 0: no raw form
  std::int64_t count;  // tasks or round trips timed
};

}  // namespace

bool is_task_workload(const std::string& w) { return w == "tasks"; }

void compare_tasks(const mpiproc::communicator& world, std::int64_t tasks, int trials) {
  const int rank = world.rank(), ranks = world.size(), last = ranks - 1;
  constexpr double unset = std::numeric_limits<double>::max();
  std::int64_t ran_there = 0;  // round trips whose task the last rank ran
  const int rounds = 2000;
  row one{"tasks, rank 0 submits", unset, unset, tasks}, every{"tasks, every rank submits", unset, -1, tasks};
  row trip{"task round trip", unset, unset, rounds}, local{"task on its own rank", unset, -1, rounds};
  for (int t = 0; t < trials; ++t) {
    {  // throughput, rank 0 alone
      mpiproc::task_pool pool(world);
      const auto same = pool.define([](std::int64_t x) { return x; });
      MPI_Barrier(user_comm);
      const double start = MPI_Wtime();
      std::int64_t sum = 0;
      if (rank == 0) {
        std::vector<mpiproc::future<std::int64_t>> futures;
        futures.reserve(static_cast<std::size_t>(tasks));
        for (std::int64_t x = 0; x < tasks; ++x) futures.push_back(pool.submit(same, x));
        for (const auto& f : futures) sum += f.get();
      }
      pool.close();
      one.lib = std::min(one.lib, slowest(user_comm, MPI_Wtime() - start, false));
      if (rank == 0 && sum != tasks * (tasks - 1) / 2) throw std::runtime_error("tasks: a wrong sum");
    }
    if (ranks > 1) {  // a farm needs a worker
      MPI_Barrier(user_comm);
      const double start = MPI_Wtime();
      const std::int64_t check = raw_farm(user_comm, tasks);
      one.raw = std::min(one.raw, slowest(user_comm, MPI_Wtime() - start, false));
      if (rank == 0 && check != tasks * (tasks - 1) / 2) throw std::runtime_error("tasks: the farm's sum is wrong");
    }
    {  // throughput, every rank
      mpiproc::task_pool pool(world);
      const auto same = pool.define([](std::int64_t x) { return x; });
      const std::int64_t mine = tasks / ranks + (rank < tasks % ranks ? 1 : 0);
      MPI_Barrier(user_comm);
      const double start = MPI_Wtime();
      std::vector<mpiproc::future<std::int64_t>> futures;
      futures.reserve(static_cast<std::size_t>(mine));
      std::int64_t sum = 0;
      for (std::int64_t x = 0; x < mine; ++x) futures.push_back(pool.submit(same, x));
      for (const auto& f : futures) sum += f.get();
      pool.close();
      every.lib = std::min(every.lib, slowest(user_comm, MPI_Wtime() - start, false));
      if (sum != mine * (mine - 1) / 2) throw std::runtime_error("tasks: a wrong sum");
    }
    if (ranks > 1) {  // round trip to the last rank
      mpiproc::task_pool pool(world);
      const auto where = pool.define([rank](std::int64_t) { return rank; });
      MPI_Barrier(user_comm);
      const double start = MPI_Wtime();
      if (rank == 0)
        for (int k = 0; k < rounds; ++k)
          if (pool.submit(mpiproc::task_options{.rank = last}, where, std::int64_t{k}).get() == last) ++ran_there;
      const double took = MPI_Wtime() - start;
      pool.close();
      trip.lib = std::min(trip.lib, slowest(user_comm, took, false) / rounds);
      trip.raw = std::min(trip.raw, raw_round_trip(user_comm, rounds));
    }
    {  // one task on its own rank
      mpiproc::task_pool pool(world);
      const auto same = pool.define([](std::int64_t x) { return x; });
      const double start = MPI_Wtime();
      if (rank == 0)
        for (int k = 0; k < rounds; ++k)
          if (pool.submit(same, std::int64_t{k}).get() != k) throw std::runtime_error("tasks: a wrong local task");
      const double took = MPI_Wtime() - start;
      pool.close();
      local.lib = std::min(local.lib, rank == 0 ? took / rounds : 0.0);
    }
  }
  if (rank != 0) return;
  for (const row* r : {&one, &every}) {
    std::printf("%-26s %9lld tasks  mpiproc %8.4f s  %9.0f tasks/s", r->name, static_cast<long long>(r->count), r->lib,
                static_cast<double>(r->count) / r->lib);
    if (r == &one && ranks > 1)
      std::printf("  raw farm %8.4f s  %9.0f tasks/s  ratio %6.3f\n", r->raw, static_cast<double>(r->count) / r->raw,
                  r->lib / r->raw);
    else if (r == &one)
      std::printf("  (a raw farm needs 2 ranks)\n");
    else
      std::printf("  (raw: see the farm above)\n");
  }
  if (ranks > 1)
    std::printf("%-26s %9d trips  mpiproc %8.2f us  raw send/recv round trip %8.2f us  ratio %6.3f  (%.0f %% ran on rank %d)\n",
                trip.name, rounds, trip.lib * 1e6, trip.raw * 1e6, trip.lib / trip.raw,
                100.0 * static_cast<double>(ran_there) / (static_cast<double>(rounds) * trials), last);
  std::printf("%-26s %9d tasks  mpiproc %8.2f us a task (submit + get)\n", local.name, rounds, local.lib * 1e6);
  std::fflush(stdout);
}

}  // namespace bench
