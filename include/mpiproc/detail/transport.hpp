#pragma once

// The collectives that move values between ranks: trivially copyable types as raw MPI data (no
// encoding cost; ranks are assumed to share one data layout), every other type as its bytes
// (detail/bytes.hpp, the one encoding) in plain MPI calls.

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/error.hpp>

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <iterator>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc::detail {

/// Gather/reduce targets: a rank number, or every rank.
inline constexpr int all_ranks = -1;

/// The predefined MPI datatype of an arithmetic type, or MPI_DATATYPE_NULL.
template <class T>
MPI_Datatype builtin_type() noexcept {
  if constexpr (std::is_same_v<T, bool>) return MPI_CXX_BOOL;
  else if constexpr (std::is_same_v<T, std::byte>) return MPI_BYTE;
  else if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, long double>) return MPI_LONG_DOUBLE;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    if constexpr (sizeof(T) == 1) return MPI_INT8_T;
    else if constexpr (sizeof(T) == 2) return MPI_INT16_T;
    else if constexpr (sizeof(T) == 4) return MPI_INT32_T;
    else if constexpr (sizeof(T) == 8) return MPI_INT64_T;
    else return MPI_DATATYPE_NULL;
  } else if constexpr (std::is_integral_v<T>) {
    if constexpr (sizeof(T) == 1) return MPI_UINT8_T;
    else if constexpr (sizeof(T) == 2) return MPI_UINT16_T;
    else if constexpr (sizeof(T) == 4) return MPI_UINT32_T;
    else if constexpr (sizeof(T) == 8) return MPI_UINT64_T;
    else return MPI_DATATYPE_NULL;
  } else
    return MPI_DATATYPE_NULL;
}

/// A committed MPI datatype of sizeof(T) bytes, made once per T, so that counts stay in items
/// (not bytes) and large payloads do not overflow MPI's int counts.
template <class T>
MPI_Datatype raw_type() {
  static_assert(travels_raw<T>);
  if (MPI_Datatype builtin = builtin_type<T>(); builtin != MPI_DATATYPE_NULL) return builtin;
  static const MPI_Datatype type = [] {
    MPI_Datatype t = MPI_DATATYPE_NULL;
    MPIPROC_CHECK(MPI_Type_contiguous(static_cast<int>(sizeof(T)), MPI_BYTE, &t));
    MPIPROC_CHECK(MPI_Type_commit(&t));
    return t;
  }();
  return type;
}

/// A buffer for a collective's bytes, kept by the thread between calls (two: `Which` 0 and 1):
/// a fresh one of megabytes costs a page fault per 4 KiB, more than the encoding itself. It holds
/// the most a call needed, up to 64 MiB; beyond that the room is given back at the next call.
template <int Which>
std::string& reused_buffer() {
  thread_local std::string buffer;
  if (buffer.capacity() > (std::size_t{64} << 20)) std::string().swap(buffer);
  buffer.clear();
  return buffer;
}

inline int checked_count(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw usage_error(std::string(what) + ": more than 2^31 - 1 items on one rank for a single MPI message");
  return static_cast<int>(n);
}

/// Collective: the lowest and the highest `value` over the ranks (equal where every rank passed
/// the same), in one allreduce: the minimum of the value and of its complement.
inline std::pair<std::uint64_t, std::uint64_t> min_max(MPI_Comm comm, std::uint64_t value) {
  const std::uint64_t mine[2] = {value, ~value};
  std::uint64_t low[2] = {0, 0};
  MPIPROC_CHECK(MPI_Allreduce(mine, low, 2, MPI_UINT64_T, MPI_MIN, comm));
  return {low[0], ~low[1]};
}

/// Collective: sends the vector `items` from `root` to every rank.
template <class T>
void broadcast(MPI_Comm comm, std::vector<T>& items, int root) {
  if constexpr (std::is_same_v<T, bool>) {  // vector<bool> packs bits and has no data()
    std::vector<unsigned char> bytes(items.begin(), items.end());
    broadcast(comm, bytes, root);
    items.assign(bytes.begin(), bytes.end());
  } else if constexpr (travels_raw<T>) {
    std::uint64_t n = items.size();
    MPIPROC_CHECK(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm));
    items.resize(n);
    MPIPROC_CHECK(MPI_Bcast(items.data(), checked_count(n, "broadcast"), raw_type<T>(), root, comm));
  } else {
    int rank = 0, size = 1;
    MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
    MPIPROC_CHECK(MPI_Comm_size(comm, &size));
    if (size == 1) return;
    std::string& bytes = reused_buffer<0>();
    if (rank == root) append_bytes(bytes, items);
    std::uint64_t n = bytes.size();
    MPIPROC_CHECK(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm));
    bytes.resize(n);
    MPIPROC_CHECK(MPI_Bcast(bytes.data(), checked_count(n, "broadcast"), MPI_BYTE, root, comm));
    if (rank != root) decode_into(items, bytes.data(), bytes.size());
  }
}

/// Collective: every rank's `mine` bytes, concatenated in rank order on `root` (or every rank for
/// all_ranks), with each rank's length and place there; elsewhere nothing.
struct gathered_bytes {
  const std::string& all;
  std::vector<int> lengths, places;
};
inline gathered_bytes gather_bytes(MPI_Comm comm, const std::string& mine, int root) {
  int rank = 0;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  int size = 1;
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  // Every rank learns every length, so that all refuse an oversized gather together.
  const int length = checked_count(mine.size(), "gather");
  std::vector<int> lengths(static_cast<std::size_t>(size));
  MPIPROC_CHECK(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm));
  std::vector<int> places(lengths.size());
  std::int64_t total = lengths.empty() ? 0 : lengths[0];
  for (std::size_t r = 1; r < lengths.size(); ++r) {
    places[r] = static_cast<int>(total);
    total += lengths[r];
    if (total > INT_MAX)
      throw usage_error("mpiproc: gathering " + std::to_string(total) +
                        " bytes of values exceeds MPI's 2^31 - 1 per call; use map_reduce, or map smaller ranges");
  }
  std::string& all = reused_buffer<1>();
  if (root == all_ranks || rank == root) all.resize(static_cast<std::size_t>(total));
  const int count = lengths[static_cast<std::size_t>(rank)];
  if (root == all_ranks)
    MPIPROC_CHECK(MPI_Allgatherv(mine.data(), count, MPI_BYTE, all.data(), lengths.data(), places.data(), MPI_BYTE, comm));
  else
    MPIPROC_CHECK(
        MPI_Gatherv(mine.data(), count, MPI_BYTE, all.data(), lengths.data(), places.data(), MPI_BYTE, root, comm));
  return {all, std::move(lengths), std::move(places)};
}

/// Collective: gather_bytes of every rank's `value` in the one encoding.
template <class U>
gathered_bytes gather_encoded(MPI_Comm comm, const U& value, int root) {
  std::string& mine = reused_buffer<0>();
  append_bytes(mine, value);
  return gather_bytes(comm, mine, root);
}

/// Collective: one value from every rank, in rank order, on `root` (or on every rank if root is
/// all_ranks); other ranks get an empty vector.
template <class T>
std::vector<T> gather(MPI_Comm comm, const T& value, int root) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  std::vector<T> out;
  if constexpr (std::is_same_v<T, bool>) {  // vector<bool> packs bits and has no data()
    const std::vector<unsigned char> bytes = gather(comm, static_cast<unsigned char>(value), root);
    out.assign(bytes.begin(), bytes.end());
  } else if constexpr (travels_raw<T>) {
    if (root == all_ranks || rank == root) out.resize(static_cast<std::size_t>(size));
    if (root == all_ranks)
      MPIPROC_CHECK(MPI_Allgather(&value, 1, raw_type<T>(), out.data(), 1, raw_type<T>(), comm));
    else
      MPIPROC_CHECK(MPI_Gather(&value, 1, raw_type<T>(), out.data(), 1, raw_type<T>(), root, comm));
  } else {
    if (size == 1) {
      out.push_back(value);
      return out;
    }
    const gathered_bytes in = gather_encoded(comm, value, root);
    if (root == all_ranks || rank == root) {
      out.resize(in.lengths.size());
      for (std::size_t r = 0; r < out.size(); ++r)
        decode_into(out[r], in.all.data() + in.places[r], static_cast<std::size_t>(in.lengths[r]));
    }
  }
  return out;
}

/// Collective: every rank's vector, concatenated in rank order, on `root` (or every rank if root is
/// all_ranks); `counts` receives each rank's item count there.
template <class T>
std::vector<T> gather_concat(MPI_Comm comm, std::vector<T> items, int root, std::vector<std::int64_t>& counts) {
  int rank = 0;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  const bool receives = root == all_ranks || rank == root;
  if constexpr (std::is_same_v<T, bool>) {  // vector<bool> packs bits and has no data()
    std::vector<unsigned char> bytes = gather_concat(comm, std::vector<unsigned char>(items.begin(), items.end()), root, counts);
    return std::vector<bool>(bytes.begin(), bytes.end());
  } else if constexpr (travels_raw<T>) {
    // Every rank learns the total first, so that all refuse together rather than some waiting.
    const auto mine64 = static_cast<std::int64_t>(items.size());
    std::int64_t total = 0;
    MPIPROC_CHECK(MPI_Allreduce(&mine64, &total, 1, MPI_INT64_T, MPI_SUM, comm));
    if (total > INT_MAX)
      throw usage_error("mpiproc: gathering " + std::to_string(total) +
                        " results exceeds MPI's 2^31 - 1 per call; use map_reduce, or map smaller ranges");
    const int mine = static_cast<int>(mine64);
    std::vector<int> sizes = gather(comm, mine, root);
    std::vector<int> displs(sizes.size());
    std::vector<T> out;
    if (receives) {
      for (std::size_t r = 1; r < sizes.size(); ++r) displs[r] = displs[r - 1] + sizes[r - 1];
      out.resize(static_cast<std::size_t>(total));
      counts.assign(sizes.begin(), sizes.end());
    }
    if (root == all_ranks)
      MPIPROC_CHECK(MPI_Allgatherv(items.data(), mine, raw_type<T>(), out.data(), sizes.data(), displs.data(),
                                   raw_type<T>(), comm));
    else
      MPIPROC_CHECK(MPI_Gatherv(items.data(), mine, raw_type<T>(), out.data(), sizes.data(), displs.data(),
                                raw_type<T>(), root, comm));
    return out;
  } else {
    int size = 1;
    MPIPROC_CHECK(MPI_Comm_size(comm, &size));
    if (size == 1) {
      counts.assign(1, static_cast<std::int64_t>(items.size()));
      return items;
    }
    const gathered_bytes in = gather_encoded(comm, items, root);
    std::vector<T> out;
    if (receives) {
      counts.clear();
      std::vector<T> part;
      for (std::size_t r = 0; r < in.lengths.size(); ++r) {
        decode_into(part, in.all.data() + in.places[r], static_cast<std::size_t>(in.lengths[r]));
        counts.push_back(static_cast<std::int64_t>(part.size()));
        if (out.empty()) out.reserve(part.size() * in.lengths.size());
        std::move(part.begin(), part.end(), std::back_inserter(out));
      }
    }
    return out;
  }
}

}  // namespace mpiproc::detail
