// Channel workloads, each next to what a user writes by hand with raw MPI in the same run:
// - pipe_rtt: round trip of an 8-byte message between rank 0 and the last rank (raw: MPI_Send /
//   MPI_Recv ping-pong);
// - pipe_bw: 1 MiB messages one way, then an ack (raw: MPI_Send / MPI_Recv of the same bytes);
// - queue: rank 0 puts 8-byte items, the other ranks take them until the end (raw: rank 0 streams
//   MPI_Sends round-robin to the others, then a stop message each);
// - dict: every rank adds 1 to one of 64 keys, atomically (raw: MPI_Fetch_and_op on the key's
//   slot in its owner's window; n/a where one-sided MPI does not work).
#include "channels.hpp"

#include "common.hpp"

#include <mpiproc/mpiproc.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

namespace {

constexpr std::int64_t stop_item = -1;

/// Seconds for `rounds` round trips (raw or through a pipe), timed on the two ends.
double ping_pong(const mpiproc::communicator& world, bool lib, long rounds, std::size_t bytes) {
  const MPI_Comm comm = user_comm;
  const int last = world.size() - 1, me = world.rank();
  const bool small = bytes == 0;
  mpiproc::pipe<std::int64_t> ping(world, 0, last);
  mpiproc::pipe<std::vector<char>> bulk(world, 0, last);
  std::vector<char> buffer(small ? 0 : bytes, 'x');
  std::int64_t token = 0;
  MPI_Barrier(comm);
  const double start = MPI_Wtime();
  for (long k = 0; k < rounds && (me == 0 || me == last); ++k) {
    if (small && !lib) {
      if (me == 0) {
        MPI_Send(&token, 1, MPI_INT64_T, last, 0, comm);
        MPI_Recv(&token, 1, MPI_INT64_T, last, 0, comm, MPI_STATUS_IGNORE);
      } else {
        MPI_Recv(&token, 1, MPI_INT64_T, 0, 0, comm, MPI_STATUS_IGNORE);
        MPI_Send(&token, 1, MPI_INT64_T, 0, 0, comm);
      }
      ++token;
    } else if (small) {
      if (me == 0) {
        ping.send(token);
        ping.recv(token);
      } else {
        ping.recv(token);
        ping.send(token);
      }
      ++token;
    } else if (!lib) {  // bandwidth: the bytes one way, an ack after the last
      if (me == 0)
        MPI_Send(buffer.data(), static_cast<int>(bytes), MPI_CHAR, last, 1, comm);
      else
        MPI_Recv(buffer.data(), static_cast<int>(bytes), MPI_CHAR, 0, 1, comm, MPI_STATUS_IGNORE);
    } else {
      if (me == 0)
        bulk.send(buffer);
      else if (!bulk.recv(buffer) || buffer.size() != bytes)
        throw std::runtime_error("pipe bandwidth: a message went missing");
    }
  }
  if (!small && (me == 0 || me == last)) {
    if (me == last) MPI_Send(&token, 1, MPI_INT64_T, 0, 2, comm);
    else MPI_Recv(&token, 1, MPI_INT64_T, last, 2, comm, MPI_STATUS_IGNORE);
  }
  const double seconds = MPI_Wtime() - start;
  return slowest(comm, seconds, me != 0 && me != last);
}

/// Seconds for rank 0 to hand `items` items to the other ranks (raw or through a queue); checks
/// that the items taken sum to what was put.
double stream(const mpiproc::communicator& world, bool lib, std::int64_t items) {
  const MPI_Comm comm = user_comm;
  const int me = world.rank(), ranks = world.size();
  mpiproc::queue<std::int64_t> q(world);
  std::int64_t sum = 0;
  MPI_Barrier(comm);
  const double start = MPI_Wtime();
  if (lib) {
    if (me == 0) {
      for (std::int64_t i = 0; i < items; ++i) q.put(i);
      q.close();
    } else {
      while (auto item = q.get()) sum += *item;
    }
  } else if (me == 0) {
    for (std::int64_t i = 0; i < items; ++i) MPI_Send(&i, 1, MPI_INT64_T, 1 + static_cast<int>(i % (ranks - 1)), 0, comm);
    for (int r = 1; r < ranks; ++r) MPI_Send(&stop_item, 1, MPI_INT64_T, r, 0, comm);
  } else {
    for (std::int64_t item = 0;;) {
      MPI_Recv(&item, 1, MPI_INT64_T, 0, 0, comm, MPI_STATUS_IGNORE);
      if (item == stop_item) break;
      sum += item;
    }
  }
  const double seconds = MPI_Wtime() - start;
  std::int64_t total = 0;
  MPI_Allreduce(&sum, &total, 1, MPI_INT64_T, MPI_SUM, comm);
  if (total != items * (items - 1) / 2) throw std::runtime_error("queue bench: items lost or duplicated");
  return slowest(comm, seconds, false);
}

/// Seconds for every rank to make `updates` atomic increments of its keys (raw: one-sided MPI).
double dict_updates(const mpiproc::communicator& world, bool lib, long updates, bool rma) {
  constexpr int keys = 64;
  const MPI_Comm comm = user_comm;
  const int me = world.rank(), ranks = world.size();
  mpiproc::shared_dict<std::int64_t, std::int64_t> d(world);
  std::int64_t* slots = nullptr;
  MPI_Win win = MPI_WIN_NULL;
  if (rma) {
    MPI_Win_allocate(keys * sizeof(std::int64_t), sizeof(std::int64_t), MPI_INFO_NULL, comm, &slots, &win);
    std::fill(slots, slots + keys, 0);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, win);
  }
  MPI_Barrier(comm);
  const double start = MPI_Wtime();
  const std::int64_t one = 1;
  for (long k = 0; k < updates; ++k) {
    const std::int64_t key = (k * 7 + me) % keys;
    if (lib) {
      d.update(key, [](std::optional<std::int64_t> v) { return v.value_or(0) + 1; });
    } else {
      std::int64_t before = 0;
      MPI_Fetch_and_op(&one, &before, MPI_INT64_T, static_cast<int>(key % ranks), key, MPI_SUM, win);
      MPI_Win_flush(static_cast<int>(key % ranks), win);
    }
  }
  const double seconds = MPI_Wtime() - start;
  MPI_Barrier(comm);
  std::int64_t total = 0;
  if (lib) {
    for (const auto& [key, value] : d.snapshot()) total += value;
    if (total != std::int64_t{updates} * ranks) throw std::runtime_error("dict bench: lost updates");
  }
  if (rma) {
    MPI_Win_unlock_all(win);
    MPI_Win_free(&win);
  }
  return slowest(comm, seconds, false);
}

}  // namespace

bool is_channel_workload(const std::string& w) { return w == "pipe_rtt" || w == "pipe_bw" || w == "queue" || w == "dict"; }

void compare_channel(const mpiproc::communicator& world, const std::string& workload, int trials) {
  if (world.size() < 2) return;
  const bool rma = workload == "dict" && bench::raw_rma_works(bench::user_comm);
  // A short first run of each way sizes the rest to about 0.2 s (the slower way's time): over
  // TCP a round trip costs 100 times what it does in shared memory. The fastest run counts.
  long rounds = workload == "pipe_bw" ? 20 : 200;
  const auto time_one = [&](bool as_lib) {
    if (workload == "pipe_rtt") return ping_pong(world, as_lib, rounds, 0);
    if (workload == "pipe_bw") return ping_pong(world, as_lib, rounds, std::size_t{1} << 20);
    if (workload == "queue") return stream(world, as_lib, rounds);
    return dict_updates(world, as_lib, rounds, rma);
  };
  const double first = std::max(rma || workload != "dict" ? time_one(false) : 0.0, time_one(true));
  rounds = std::clamp(static_cast<long>(static_cast<double>(rounds) * 0.2 / std::max(first, 1e-6)), 20L, 10'000'000L);
  double raw = 1e300, lib = 1e300;
  for (int t = 0; t < 2 * trials; ++t) {
    const bool as_lib = t % 2 == 1;
    if (!as_lib && workload == "dict" && !rma) continue;
    const double seconds = time_one(as_lib);
    (as_lib ? lib : raw) = std::min(as_lib ? lib : raw, seconds);
  }
  if (world.rank() != 0) return;
  const bool have_raw = raw < 1e300;
  if (workload == "pipe_rtt")
    std::printf("%-11s %-8s raw %9.3f us   mpiproc %9.3f us   time ratio %6.3f  (raw: MPI_Send/MPI_Recv ping-pong)\n",
                "pipe", "rtt", raw / rounds * 1e6, lib / rounds * 1e6, lib / raw);
  else if (workload == "pipe_bw")
    std::printf("%-11s %-8s raw %9.3f GiB/s mpiproc %9.3f GiB/s time ratio %6.3f  (raw: MPI_Send/MPI_Recv of 1 MiB)\n",
                "pipe", "1MiB", rounds / raw / 1024, rounds / lib / 1024, lib / raw);
  else if (workload == "queue")
    std::printf("%-11s %-8s raw %9.3f M/s  mpiproc %9.3f M/s  time ratio %6.3f  (raw: streaming MPI_Send round-robin, 1 "
                "producer, %d consumers)\n",
                "queue", "items", rounds / raw / 1e6, rounds / lib / 1e6, lib / raw, world.size() - 1);
  else if (have_raw)
    std::printf("%-11s %-8s raw %9.3f M/s  mpiproc %9.3f M/s  time ratio %6.3f  (raw: MPI_Fetch_and_op on the key's slot)\n",
                "dict", "update", rounds * world.size() / raw / 1e6, rounds * world.size() / lib / 1e6, lib / raw);
  else
    std::printf("%-11s %-8s raw       n/a    mpiproc %9.3f M/s  (raw needs one-sided MPI, unavailable here)\n", "dict",
                "update", rounds * world.size() / lib / 1e6);
  std::fflush(stdout);
}

}  // namespace bench
