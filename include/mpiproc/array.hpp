#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/atomic_bits.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/rlock.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc {

/// Where an array's elements live.
enum class layout {
  on_rank0,  ///< all on rank 0 (as Python's Array lives in one process)
  blocks     ///< in equal blocks over the ranks, so the array may exceed one rank's memory
};

/// A fixed-size array shared by the ranks of a communicator (Python's multiprocessing.Array).
/// Each get() and set() is atomic for elements of 1, 2, 4 or 8 bytes; bulk read() and write()
/// are not atomic as a whole: hold get_lock() where that matters.
template <class T>
class array {
  static_assert(std::is_trivially_copyable_v<T>, "mpiproc::array<T> needs a trivially copyable T");

 public:
  /// Collective over `comm`: `size` elements with all bytes zero. Every rank passes the same size.
  array(const communicator& comm, std::size_t size, layout where = layout::on_rank0)
      : lock_(comm), size_(agreed_size(comm, size)), block_(block_of(comm, size_, where)) {
    const std::size_t first = std::min(size_, block_ * static_cast<std::size_t>(comm.rank()));
    const std::size_t mine = std::min(block_, size_ - first);
    data_ = std::make_unique<detail::shared_segment>(comm.native(), mine * sizeof(T));
  }

  /// Collective over `comm`: a copy of rank 0's `values` (the other ranks' are ignored).
  array(const communicator& comm, const std::vector<T>& values, layout where = layout::on_rank0)
      : array(comm, broadcast_size(comm, values.size()), where) {
    if (comm.rank() == 0) write(0, values);
    comm.barrier();  // nobody reads before the values are in
  }

  std::size_t size() const noexcept { return size_; }
  /// The rank that holds element `i`.
  int owner(std::size_t i) const { return locate(check(i, 1)).first; }

  T get(std::size_t i) {
    const auto [rank, at] = locate(check(i, 1));
    if constexpr (detail::atomic_sized<T>) {
      return detail::from_word<T>(data_->load(rank, at, sizeof(T)));
    } else {
      T out;
      data_->read(rank, at, &out, sizeof(T));
      return out;
    }
  }

  void set(std::size_t i, const T& v) {
    const auto [rank, at] = locate(check(i, 1));
    if constexpr (detail::atomic_sized<T>)
      data_->store(rank, at, detail::to_word(v), sizeof(T));
    else
      data_->write(rank, at, &v, sizeof(T));
  }

  /// Elements [first, first + count): one request per rank holding some of them.
  std::vector<T> read(std::size_t first, std::size_t count) {
    check(first, count);
    std::vector<T> out(count);
    for_pieces(first, count, [&](int rank, std::size_t at, std::size_t done, std::size_t n) {
      data_->read(rank, at, out.data() + done, n * sizeof(T));
    });
    return out;
  }
  std::vector<T> read() { return read(0, size_); }

  /// Stores `values` at [first, first + values.size()).
  void write(std::size_t first, std::span<const T> values) {
    check(first, values.size());
    for_pieces(first, values.size(), [&](int rank, std::size_t at, std::size_t done, std::size_t n) {
      data_->write(rank, at, values.data() + done, n * sizeof(T));
    });
  }

  /// The array's own lock (re-entrant, as in Python).
  rlock& get_lock() noexcept { return lock_; }

 private:
  static std::size_t broadcast_size(const communicator& comm, std::size_t n) {
    std::uint64_t size = n;
    detail::check(MPI_Bcast(&size, 1, MPI_UINT64_T, 0, comm.native()), "MPI_Bcast");
    return size;
  }

  static std::size_t agreed_size(const communicator& comm, std::size_t n) {
    const auto [low, high] = detail::min_max(comm.native(), n);
    if (low != high)
      throw usage_error("mpiproc::array: the ranks passed different sizes (" + std::to_string(low) + " to " +
                        std::to_string(high) + ")");
    return n;
  }

  static std::size_t block_of(const communicator& comm, std::size_t size, layout where) {
    const auto ranks = static_cast<std::size_t>(comm.size());
    const std::size_t block = where == layout::blocks ? (size + ranks - 1) / ranks : size;
    return std::max<std::size_t>(block, 1);
  }

  std::size_t check(std::size_t first, std::size_t count) const {
    if (first > size_ || count > size_ - first)
      throw usage_error("mpiproc::array: elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                        ") are out of range for an array of " + std::to_string(size_));
    return first;
  }

  /// The rank holding element `i`, and its byte offset there.
  std::pair<int, std::size_t> locate(std::size_t i) const {
    return {static_cast<int>(i / block_), (i % block_) * sizeof(T)};
  }

  template <class Piece>
  void for_pieces(std::size_t first, std::size_t count, Piece&& piece) {
    for (std::size_t done = 0; done < count;) {
      const std::size_t i = first + done;
      const std::size_t n = std::min(count - done, block_ - i % block_);
      const auto [rank, at] = locate(i);
      piece(rank, at, done, n);
      done += n;
    }
  }

  rlock lock_;
  std::size_t size_;
  std::size_t block_;
  std::unique_ptr<detail::shared_segment> data_;
};

}  // namespace mpiproc
