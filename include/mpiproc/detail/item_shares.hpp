#pragma once

// The calls over items send each rank only the items it computes where they can (a broadcast
// would hold every item on every rank: P times the memory and the traffic).

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/fold_chunks.hpp>
#include <mpiproc/detail/item_server.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/schedule.hpp>

#include <mpi.h>

#include <algorithm>
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

/// The tag of a call's shares of items on the private duplicate (see failure.cpp), and the most
/// bytes one of their messages carries: the source packs one message at a time.
inline constexpr int shares_tag = 3;
inline constexpr std::size_t share_message_bytes = std::size_t{8} << 20;

/// Sends `bytes` bytes to `to` in messages of at most share_message_bytes.
inline void send_share(const char* data, std::size_t bytes, int to, MPI_Comm comm) {
  for (std::size_t at = 0; at < bytes; at += share_message_bytes)
    MPIPROC_CHECK(MPI_Send(data + at, static_cast<int>(std::min(share_message_bytes, bytes - at)), MPI_BYTE, to,
                           shares_tag, comm));
}
/// Receives `bytes` bytes that `from` sends in messages of at most share_message_bytes.
inline void receive_share(char* into, std::size_t bytes, int from, MPI_Comm comm) {
  for (std::size_t at = 0; at < bytes;) {
    MPI_Status status;
    MPIPROC_CHECK(MPI_Recv(into + at, static_cast<int>(std::min(share_message_bytes, bytes - at)), MPI_BYTE, from,
                           shares_tag, comm, &status));
    int got = 0;
    MPIPROC_CHECK(MPI_Get_count(&status, MPI_BYTE, &got));
    at += static_cast<std::size_t>(got);
  }
}

/// Collective, for a static schedule (fixed_in_advance): `source` keeps its `items`; every other
/// rank's `items` becomes its own share of them, in the order it folds them (see own_share).
/// Returns how many items the source holds. Trivially copyable items under a block schedule go
/// straight from `items` in one MPI_Scatterv; other trivially copyable items are packed and sent
/// one message of at most 8 MiB at a time, so the source sets aside no more than that; other
/// items are encoded one rank's share at a time (the share's copy and its encoding).
template <class Item>
std::int64_t scatter_shares(MPI_Comm comm, std::vector<Item>& items, int source, const schedule& s) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  const std::int64_t n = items_held(comm, items, source);
  constexpr bool raw = travels_raw<Item> && !std::is_same_v<Item, bool>;
  if constexpr (raw) {
    if (s.type() == schedule::kind::block) {  // one run per rank: send it from where it lies
      std::vector<int> counts, places;
      if (rank == source) {
        counts.assign(static_cast<std::size_t>(size), 0);
        places.assign(static_cast<std::size_t>(size), 0);
        for (int r = 0; r < size; ++r) {
          if (r == source) continue;
          const chunk c = block_chunk(n, r, size);
          places[static_cast<std::size_t>(r)] = static_cast<int>(c.offset);
          counts[static_cast<std::size_t>(r)] = static_cast<int>(c.count);
        }
        MPIPROC_CHECK(MPI_Scatterv(items.data(), counts.data(), places.data(), raw_type<Item>(), nullptr, 0,
                                   raw_type<Item>(), source, comm));
      } else {
        items.resize(static_cast<std::size_t>(block_chunk(n, rank, size).count));
        MPIPROC_CHECK(MPI_Scatterv(nullptr, nullptr, nullptr, raw_type<Item>(), items.data(),
                                   checked_count(items.size(), "map over items"), raw_type<Item>(), source, comm));
      }
      return n;
    }
  }
  if (rank != source) {
    if constexpr (raw) {
      std::int64_t mine = 0;
      chunk_source chunks(n, s, rank, size);
      for (chunk c; chunks.next(c);) mine += c.count;
      items.resize(static_cast<std::size_t>(mine));
      receive_share(reinterpret_cast<char*>(items.data()), items.size() * sizeof(Item), source, comm);
    } else {
      std::uint64_t length = 0;
      MPIPROC_CHECK(MPI_Recv(&length, 1, MPI_UINT64_T, source, shares_tag, comm, MPI_STATUS_IGNORE));
      std::string& bytes = reused_buffer<0>();
      bytes.resize(static_cast<std::size_t>(length));
      receive_share(bytes.data(), bytes.size(), source, comm);
      decode_into(items, bytes.data(), bytes.size());
    }
    return n;
  }
  for (int r = 0; r < size; ++r) {
    if (r == source) continue;
    if constexpr (raw) {
      constexpr std::size_t most = std::max<std::size_t>(1, share_message_bytes / sizeof(Item));
      std::vector<Item> packed;
      packed.reserve(std::min(most, items.size()));
      for_each_position_of(n, s, r, size, [&](std::int64_t p) {
        packed.push_back(items[static_cast<std::size_t>(p)]);
        if (packed.size() == most) {
          send_share(reinterpret_cast<const char*>(packed.data()), packed.size() * sizeof(Item), r, comm);
          packed.clear();
        }
      });
      send_share(reinterpret_cast<const char*>(packed.data()), packed.size() * sizeof(Item), r, comm);
    } else {
      std::vector<Item> share;
      for_each_position_of(n, s, r, size, [&](std::int64_t p) { share.push_back(items[static_cast<std::size_t>(p)]); });
      std::string& bytes = reused_buffer<0>();
      bytes.clear();
      append_bytes(bytes, share);
      const std::uint64_t length = bytes.size();
      MPIPROC_CHECK(MPI_Send(&length, 1, MPI_UINT64_T, r, shares_tag, comm));
      send_share(bytes.data(), bytes.size(), r, comm);
    }
  }
  return n;
}

/// The smallest dynamic chunk whose items a rank fetches rather than receives by broadcast.
inline constexpr std::int64_t fetched_chunk = 64;

/// Collective, for a call over the items `source` holds (the caller holds its collective_call;
/// `root` is the call's, for the agreement): returns over(form, n), where n is the number of items
/// and form (see fold_chunks.hpp) gives this rank's function the items it computes. Each rank
/// receives only those: under a static schedule its share, up front (scatter_shares); under
/// dynamic and guided schedules each chunk's items as it takes the chunk, one round trip to the
/// source's service thread (item_server). Every item goes to every rank instead where a round
/// trip would cost more than it saves (dynamic chunks under 64 items), where MPI lacks
/// MPI_THREAD_MULTIPLE, and with a checkpoint (whose resumption may give any rank any chunk).
template <class Item, class Fn, class Over>
auto over_items(const communicator& comm, const char* call, std::vector<Item>& items, Fn& fn, const schedule& s,
                int source, int root, const call_options& opts, Over&& over) {
  const bool shares = fixed_in_advance(s) && !opts.checkpoint && comm.size() > 1;
  const bool fetches = !fixed_in_advance(s) && !opts.checkpoint && comm.size() > 1 &&
                       (s.type() == schedule::kind::guided || s.chunk() == 0 || s.chunk() >= fetched_chunk) &&
                       item_server::available();
  agree_before_broadcast<Item>(comm.native(), call, s, root, source, static_cast<bool>(opts.checkpoint));
  if (fetches) {
    const std::int64_t n = items_held(comm.native(), items, source);
    item_server server(comm, source, [&items](std::int64_t offset, std::int64_t count) {
      std::string out;  // the encoding of a vector of the run's items
      if constexpr (travels_raw<Item> && !std::is_same_v<Item, bool>)
        out.assign(reinterpret_cast<const char*>(items.data() + offset), static_cast<std::size_t>(count) * sizeof(Item));
      else
        append_bytes(out, std::vector<Item>(items.begin() + offset, items.begin() + offset + count));
      return out;
    });
    if (comm.rank() == source) return over(listed_items<Item, Fn>{items, fn}, n);
    std::vector<Item> run;
    return over(fetched_items<Item, Fn>{server, n, fn, run}, n);
  }
  if (!shares) {
    broadcast(comm.native(), items, source);
    return over(listed_items<Item, Fn>{items, fn}, static_cast<std::int64_t>(items.size()));
  }
  const std::int64_t n = scatter_shares(comm.native(), items, source, s);
  if (comm.rank() == source) return over(listed_items<Item, Fn>{items, fn}, n);
  std::size_t used = 0;
  return over(own_share<Item, Fn>{items, n, fn, used}, n);
}

}  // namespace mpiproc::detail
