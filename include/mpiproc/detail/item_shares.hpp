#pragma once

// The calls over items with a static schedule send each rank only the items it computes (a
// broadcast would hold every item on every rank: P times the memory and the traffic).

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/schedule.hpp>

#include <mpi.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace mpiproc::detail {

/// Calls visit(position) for each position of [0, n) that the static schedule `s` gives `rank`
/// of `ranks`, in the order the rank folds them.
template <class Visit>
void for_each_position_of(std::int64_t n, const schedule& s, int rank, int ranks, Visit&& visit) {
  chunk_source chunks(n, s, rank, ranks);
  for (chunk c; chunks.next(c);)
    for (std::int64_t k = 0, at = c.offset; k < c.count; ++k, at += c.stride) visit(at);
}

/// Collective: how many items `source` holds, on every rank (at most an MPI count).
template <class Item>
std::int64_t items_held(MPI_Comm comm, const std::vector<Item>& items, int source) {
  std::uint64_t total = items.size();
  MPIPROC_CHECK(MPI_Bcast(&total, 1, MPI_UINT64_T, source, comm));
  return checked_count(total, "map over items");
}

/// Collective, for a static schedule (fixed_in_advance): `source` keeps its `items`; every other
/// rank's `items` becomes its own share of them, in the order it folds them (see own_share).
/// Returns how many items the source holds. The source sets aside one rank's share at a time
/// (none for trivially copyable items under a block schedule, sent straight from `items`).
template <class Item>
std::int64_t scatter_shares(MPI_Comm comm, std::vector<Item>& items, int source, const schedule& s) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  const std::int64_t n = items_held(comm, items, source);
  std::vector<int> counts, places;  // the source's, per rank: items (raw) or bytes (encoded)
  if constexpr (travels_raw<Item> && !std::is_same_v<Item, bool>) {
    std::vector<Item> packed;
    const Item* from = items.data();
    if (rank == source) {
      counts.assign(static_cast<std::size_t>(size), 0);
      places.assign(static_cast<std::size_t>(size), 0);
      for (int r = 0; r < size; ++r) {
        if (r == source) continue;
        if (s.type() == schedule::kind::block) {  // one run per rank: send it from where it lies
          const chunk c = block_chunk(n, r, size);
          places[static_cast<std::size_t>(r)] = static_cast<int>(c.offset);
          counts[static_cast<std::size_t>(r)] = static_cast<int>(c.count);
        } else {
          places[static_cast<std::size_t>(r)] = static_cast<int>(packed.size());
          for_each_position_of(n, s, r, size, [&](std::int64_t p) { packed.push_back(items[static_cast<std::size_t>(p)]); });
          counts[static_cast<std::size_t>(r)] = static_cast<int>(packed.size()) - places[static_cast<std::size_t>(r)];
        }
      }
      if (s.type() != schedule::kind::block) from = packed.data();
      MPIPROC_CHECK(MPI_Scatterv(from, counts.data(), places.data(), raw_type<Item>(), nullptr, 0, raw_type<Item>(),
                                 source, comm));
    } else {
      std::int64_t mine = 0;
      chunk_source chunks(n, s, rank, size);
      for (chunk c; chunks.next(c);) mine += c.count;
      items.resize(static_cast<std::size_t>(mine));
      MPIPROC_CHECK(MPI_Scatterv(nullptr, nullptr, nullptr, raw_type<Item>(), items.data(),
                                 checked_count(items.size(), "map over items"), raw_type<Item>(), source, comm));
    }
  } else {
    std::string& bytes = reused_buffer<0>();
    int length = 0;
    if (rank == source) {
      counts.assign(static_cast<std::size_t>(size), 0);
      places.assign(static_cast<std::size_t>(size), 0);
      std::vector<Item> share;
      for (int r = 0; r < size; ++r) {
        if (r == source) continue;
        share.clear();
        for_each_position_of(n, s, r, size, [&](std::int64_t p) { share.push_back(items[static_cast<std::size_t>(p)]); });
        places[static_cast<std::size_t>(r)] = checked_count(bytes.size(), "map over items");
        append_bytes(bytes, share);
        counts[static_cast<std::size_t>(r)] = checked_count(bytes.size(), "map over items") - places[static_cast<std::size_t>(r)];
      }
    }
    MPIPROC_CHECK(MPI_Scatter(counts.data(), 1, MPI_INT, &length, 1, MPI_INT, source, comm));
    if (rank != source) bytes.resize(static_cast<std::size_t>(length));
    MPIPROC_CHECK(MPI_Scatterv(bytes.data(), counts.data(), places.data(), MPI_BYTE,
                               rank == source ? nullptr : bytes.data(), rank == source ? 0 : length, MPI_BYTE, source,
                               comm));
    if (rank != source) decode_into(items, bytes.data(), bytes.size());
  }
  return n;
}

}  // namespace mpiproc::detail
