#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/schedule.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mpiproc::detail {

/// A set of positions a rank works on: offset, offset + stride, ... (count of them).
/// Every schedule hands out contiguous chunks (stride 1) except cyclic with chunk size 1, which
/// gives each rank one strided chunk: the loop a hand-written cyclic split would run.
struct chunk {
  std::int64_t offset = 0;
  std::int64_t count = 0;
  std::int64_t stride = 1;
};

/// The chunk size dynamic uses for `n` items on `ranks` ranks.
std::int64_t dynamic_chunk_size(std::int64_t n, int ranks, std::int64_t requested);

/// Guided chunk boundaries over [0, n): chunk k is [bounds[k], bounds[k + 1]). Every rank computes
/// the same table, so the shared counter only has to hand out chunk numbers.
std::vector<std::int64_t> guided_bounds(std::int64_t n, int ranks, std::int64_t min_chunk);

/// The one chunk a block schedule gives `rank` of `ranks` over [0, n): contiguous runs in rank
/// order, the first n % ranks of them one item longer.
inline chunk block_chunk(std::int64_t n, int rank, int ranks) {
  const std::int64_t r = rank, base = n / ranks, extra = n % ranks;
  return {r * base + std::min(r, extra), base + (r < extra ? 1 : 0), 1};
}

/// Whether `s` gives every rank its chunks in advance (block and cyclic), not from a shared counter.
inline bool fixed_in_advance(const schedule& s) {
  return s.type() == schedule::kind::block || s.type() == schedule::kind::cyclic;
}

/// The chunks of the positions [0, n) that schedule `s` gives this rank, one at a time.
/// Constructing one is collective in program order (every rank, same n and s).
class chunk_source {
 public:
  chunk_source(const communicator& comm, std::int64_t n, const schedule& s);
  /// The chunks a static schedule (block, cyclic) gives `rank` of `ranks`, known in advance
  /// without communication (see fixed_in_advance).
  chunk_source(std::int64_t n, const schedule& s, int rank, int ranks);
  /// Collective, at the start of every map call on `comm` whatever its schedule (see
  /// collective_call): makes the shared counter on the first call and starts a loop on it, and
  /// counts the call (communicator::begin_map_call).
  static void prepare(const communicator& comm);
  /// The next chunk of this rank into `c`; false when there is none left.
  bool next(chunk& c);
  /// This rank failed: make the other ranks stop taking shared chunks. Never throws.
  void cancel() noexcept;

 private:
  chunk_source(const communicator* comm, std::int64_t n, const schedule& s, int rank, int ranks);

  const communicator* comm_;  // the shared counter's, for dynamic and guided
  std::int64_t n_;
  schedule::kind kind_;
  int rank_, ranks_;
  std::int64_t chunk_ = 0;      // block/cyclic/dynamic chunk size
  std::uint64_t chunks_ = 0;    // how many chunks in all
  std::uint64_t next_ = 0;      // block/cyclic: the next chunk number of this rank
  std::vector<std::int64_t> bounds_;  // guided
};

/// Thrown out of a rank's loop whose part of the call a watchdog already concluded (a chunk ran past
/// its chunk_time_limit; see call_monitor): the loop's shared state belongs to later calls now.
struct call_taken_over {};

/// Calls on_chunk(c) for each chunk `s` gives this rank. If on_chunk throws, the shared counter
/// is closed so the other ranks stop taking work, and the exception propagates.
template <class OnChunk>
void for_each_owned_chunk(const communicator& comm, std::int64_t n, const schedule& s, OnChunk&& on_chunk) {
  chunk_source source(comm, n, s);
  try {
    // One call site, so the caller's loop body is inlined once, the same for every schedule.
    for (chunk c; source.next(c);) on_chunk(c);
  } catch (const call_taken_over&) {
    throw;
  } catch (...) {
    source.cancel();
    throw;
  }
}

}  // namespace mpiproc::detail
