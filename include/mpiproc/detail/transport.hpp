#pragma once

// Moving values between ranks: trivially copyable types travel as raw MPI data (no serialization
// cost; ranks are assumed to share one data layout), every other type through Boost.Serialization.

#include <mpiproc/detail/check.hpp>
#include <mpiproc/error.hpp>

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/exception.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <climits>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc::detail {

/// Gather/reduce targets: a rank number, or every rank.
inline constexpr int all_ranks = -1;

template <class T>
inline constexpr bool travels_raw = std::is_trivially_copyable_v<T>;

/// The predefined MPI datatype of an arithmetic type, or MPI_DATATYPE_NULL.
template <class T>
MPI_Datatype builtin_type() noexcept {
  if constexpr (std::is_same_v<T, bool>) return MPI_CXX_BOOL;
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

/// Runs a Boost.MPI call, turning its exceptions into mpi_error.
template <class F>
decltype(auto) boost_mpi_call(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const boost::mpi::exception& e) {
    throw mpi_error(e.routine(), e.result_code());
  }
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
    boost::mpi::communicator bc(comm, boost::mpi::comm_attach);
    boost_mpi_call([&] { boost::mpi::broadcast(bc, items, root); });
  }
}

/// Collective: one value from every rank, in rank order, on `root` (or on every rank if root is
/// all_ranks); other ranks get an empty vector.
template <class T>
std::vector<T> gather(MPI_Comm comm, const T& value, int root) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  std::vector<T> out;
  if constexpr (travels_raw<T>) {
    if (root == all_ranks || rank == root) out.resize(static_cast<std::size_t>(size));
    if (root == all_ranks)
      MPIPROC_CHECK(MPI_Allgather(&value, 1, raw_type<T>(), out.data(), 1, raw_type<T>(), comm));
    else
      MPIPROC_CHECK(MPI_Gather(&value, 1, raw_type<T>(), out.data(), 1, raw_type<T>(), root, comm));
  } else {
    boost::mpi::communicator bc(comm, boost::mpi::comm_attach);
    boost_mpi_call([&] {
      if (root == all_ranks)
        boost::mpi::all_gather(bc, value, out);
      else
        boost::mpi::gather(bc, value, out, root);
    });
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
    std::vector<std::vector<T>> parts = gather(comm, items, root);
    std::vector<T> out;
    if (receives) {
      counts.clear();
      for (auto& part : parts) {
        counts.push_back(static_cast<std::int64_t>(part.size()));
        for (auto& item : part) out.push_back(std::move(item));
      }
    }
    return out;
  }
}

}  // namespace mpiproc::detail
