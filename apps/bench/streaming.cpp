// The streaming workload: x*x over [0, n), every result summed on rank 0, as a Python user writes
// `sum(pool.imap_unordered(square, range(n), chunksize))`. Four ways in the same run:
// - map: mpiproc's collective map under its default (block) schedule, every result on every rank
//   at the end, then rank 0 sums;
// - imap_unordered and imap: each result reaches rank 0 as its piece is done;
// - raw: what a user writes by hand: each rank computes its block in runs of 64 Ki results and
//   MPI_Sends each run to rank 0, which sums its own block, then receives the others' runs in
//   any order and sums them.
// Rank 0's peak resident memory is reset before each run (where Linux allows) and its growth shown.
#include "streaming.hpp"

#include "common.hpp"

#include <mpiproc/mpiproc.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

namespace {

/// Rank 0's peak resident memory in bytes, reset first where `reset`; -1 where Linux does not tell.
std::int64_t peak_memory(bool reset) {
  if (reset) {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    if (!clear.flush()) return -1;
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

std::int64_t square(std::int64_t x) { return x * x; }

/// The hand-written stream: block split, runs of 64 Ki results to rank 0.
std::uint64_t raw_stream(MPI_Comm comm, std::int64_t n) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const std::int64_t base = n / ranks, extra = n % ranks;
  const std::int64_t lo = rank * base + std::min<std::int64_t>(rank, extra), hi = lo + base + (rank < extra ? 1 : 0);
  constexpr std::int64_t run = 65536;
  std::vector<std::int64_t> buffer(run);
  std::uint64_t sum = 0;  // wraps: the sums compared are modulo 2^64
  if (rank != 0) {
    for (std::int64_t at = lo; at < hi; at += run) {
      const std::int64_t count = std::min(run, hi - at);
      for (std::int64_t k = 0; k < count; ++k) buffer[static_cast<std::size_t>(k)] = (at + k) * (at + k);
      MPI_Send(buffer.data(), static_cast<int>(count), MPI_INT64_T, 0, 7, comm);
    }
    return 0;
  }
  for (std::int64_t i = lo; i < hi; ++i) sum += static_cast<std::uint64_t>(i * i);
  std::int64_t left = n - (hi - lo);
  while (left > 0) {
    MPI_Status status;
    MPI_Recv(buffer.data(), static_cast<int>(run), MPI_INT64_T, MPI_ANY_SOURCE, 7, comm, &status);
    int count = 0;
    MPI_Get_count(&status, MPI_INT64_T, &count);
    for (int k = 0; k < count; ++k) sum += static_cast<std::uint64_t>(buffer[static_cast<std::size_t>(k)]);
    left -= count;
  }
  return sum;
}

struct way {
  const char* name;
  double best = std::numeric_limits<double>::max();
  std::int64_t grew = 0;  // rank 0's largest peak growth over the runs
  std::uint64_t sum = 0;
};

}  // namespace

bool is_streaming_workload(const std::string& w) { return w == "imap"; }

void compare_streaming(const mpiproc::communicator& world, std::int64_t n, int trials) {
  const mpiproc::range<std::int64_t> items{0, n};
  std::vector<way> ways{{"map"}, {"imap_unordered"}, {"imap"}, {"raw stream"}};
  const auto run = [&](std::size_t k) {
    std::uint64_t sum = 0;
    MPI_Barrier(user_comm);
    const std::int64_t before = world.rank() == 0 ? peak_memory(true) : -1;
    const double start = MPI_Wtime();
    if (k == 0) {
      const std::vector<std::int64_t> all = mpiproc::map(world, items, square);
      if (world.rank() == 0)
        for (const std::int64_t v : all) sum += static_cast<std::uint64_t>(v);
    } else if (k == 1) {
      mpiproc::imap_unordered(world, items, square, [&](std::int64_t v) { sum += static_cast<std::uint64_t>(v); });
    } else if (k == 2) {
      mpiproc::imap(world, items, square, [&](std::int64_t v) { sum += static_cast<std::uint64_t>(v); });
    } else {
      sum = raw_stream(user_comm, n);
    }
    const double took = slowest(user_comm, MPI_Wtime() - start, false);
    way& w = ways[k];
    w.best = std::min(w.best, took);
    if (before >= 0) w.grew = std::max(w.grew, peak_memory(false) - before);
    if (world.rank() == 0) {
      if (w.sum != 0 && w.sum != sum) throw std::runtime_error(std::string("streaming: ") + w.name + " changed its sum");
      w.sum = sum;
    }
  };
  for (int t = 0; t < trials; ++t)
    for (std::size_t k = 0; k < ways.size(); ++k) run(t % 2 == 0 ? k : ways.size() - 1 - k);
  if (world.rank() != 0) return;
  for (const way& w : ways) {
    if (w.sum != ways[0].sum) throw std::runtime_error(std::string("streaming: ") + w.name + " disagrees with map");
    std::printf("stream %-15s %12lld items  %8.4f s  %7.2f M items/s  x%.2f of map  rank 0 peak +%lld MB\n", w.name,
                static_cast<long long>(n), w.best, static_cast<double>(n) / w.best / 1e6, ways[0].best / w.best,
                static_cast<long long>(w.grew >> 20));
  }
  std::fflush(stdout);
}

}  // namespace bench
