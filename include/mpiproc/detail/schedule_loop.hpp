#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/chunk_counter.hpp>
#include <mpiproc/schedule.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mpiproc::detail {

/// The chunk size dynamic uses for `n` items on `ranks` ranks.
std::int64_t dynamic_chunk_size(std::int64_t n, int ranks, std::int64_t requested);

/// Guided chunk boundaries over [0, n): chunk k is [bounds[k], bounds[k + 1]). Every rank computes
/// the same table, so the shared counter only has to hand out chunk numbers.
std::vector<std::int64_t> guided_bounds(std::int64_t n, int ranks, std::int64_t min_chunk);

/// Calls on_chunk(offset, count) for each chunk of the positions [0, n) that `s` gives this rank.
/// Collective in program order (every rank calls it with the same n and s). If on_chunk throws under
/// a shared-counter schedule, the counter is closed so the other ranks stop taking work, and the
/// exception propagates.
template <class OnChunk>
void for_each_owned_chunk(const communicator& comm, std::int64_t n, const schedule& s, OnChunk&& on_chunk) {
  if (n == 0) return;
  const std::int64_t ranks = comm.size();
  const std::int64_t rank = comm.rank();
  auto kind = s.type();
  // On one rank a shared counter only adds round trips.
  if (ranks == 1 && (kind == schedule::kind::dynamic || kind == schedule::kind::guided)) kind = schedule::kind::block;

  switch (kind) {
    case schedule::kind::block: {
      const std::int64_t base = n / ranks, extra = n % ranks;
      const std::int64_t count = base + (rank < extra ? 1 : 0);
      if (count > 0) on_chunk(rank * base + std::min(rank, extra), count);
      return;
    }
    case schedule::kind::cyclic: {
      const std::uint64_t chunk = static_cast<std::uint64_t>(s.chunk() > 0 ? s.chunk() : 1);
      const std::uint64_t chunks = (static_cast<std::uint64_t>(n) - 1) / chunk + 1;
      for (std::uint64_t k = static_cast<std::uint64_t>(rank); k < chunks; k += static_cast<std::uint64_t>(ranks)) {
        const auto offset = static_cast<std::int64_t>(k * chunk);
        on_chunk(offset, std::min<std::int64_t>(static_cast<std::int64_t>(chunk), n - offset));
      }
      return;
    }
    case schedule::kind::dynamic:
    case schedule::kind::guided: {
      std::vector<std::int64_t> bounds;
      std::int64_t chunk = 0;
      if (kind == schedule::kind::guided)
        bounds = guided_bounds(n, static_cast<int>(ranks), s.chunk());
      else
        chunk = dynamic_chunk_size(n, static_cast<int>(ranks), s.chunk());
      const std::uint64_t chunks = kind == schedule::kind::guided
                                       ? bounds.size() - 1
                                       : (static_cast<std::uint64_t>(n) - 1) / static_cast<std::uint64_t>(chunk) + 1;
      auto& counter = comm.chunk_counter();
      counter.begin_loop();
      try {
        for (std::uint64_t k = counter.next(); k < chunks; k = counter.next()) {
          if (kind == schedule::kind::guided) {
            on_chunk(bounds[k], bounds[k + 1] - bounds[k]);
          } else {
            const auto offset = static_cast<std::int64_t>(k) * chunk;
            on_chunk(offset, std::min(chunk, n - offset));
          }
        }
      } catch (...) {
        try {
          counter.cancel(chunks);
        } catch (...) {
          // The original error matters more than a failure to stop the others early.
        }
        throw;
      }
      return;
    }
  }
}

}  // namespace mpiproc::detail
