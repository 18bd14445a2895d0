#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/atomic_bits.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
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

/// A fixed-size array shared by the ranks of a communicator, without a lock (Python's
/// multiprocessing.RawArray; array<T> adds the lock). Each get() and set() is atomic for elements
/// of 1, 2, 4 or 8 bytes; bulk reads and writes (read, write, get_slice, set_slice) are not
/// atomic as a whole. An index or range outside the array is a usage_error; slices clamp their
/// bounds as Python's do.
template <class T>
class raw_array {
  static_assert(std::is_trivially_copyable_v<T>, "mpiproc::raw_array<T> needs a trivially copyable T");

 public:
  /// Collective over `comm`: `size` elements with all bytes zero. Every rank passes the same size
  /// (usage_error on every rank otherwise).
  raw_array(const communicator& comm, std::size_t size, layout where = layout::on_rank0)
      : size_(agreed_size(comm, size)), block_(block_of(comm, size_, where)) {
    const std::size_t first = std::min(size_, block_ * static_cast<std::size_t>(comm.rank()));
    const std::size_t mine = std::min(block_, size_ - first);
    data_ = std::make_unique<detail::shared_segment>(comm, mine * sizeof(T));
  }

  /// Collective over `comm`: a copy of rank 0's `values` (the other ranks' are ignored).
  raw_array(const communicator& comm, const std::vector<T>& values, layout where = layout::on_rank0)
      : raw_array(comm, broadcast_size(comm, values.size()), where) {
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

  /// Python's arr[start:stop:step]: negative bounds count from the end, bounds past either end
  /// clamp, an empty bound (std::nullopt) means the whole way (the end for a negative step). One
  /// request per rank holding elements of it. Step 0 is a value_error (Python's ValueError).
  std::vector<T> get_slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop,
                           std::int64_t step = 1) {
    const auto s = resolve(start, stop, step);
    if (s.length == 0) return {};
    const std::size_t span = (s.length - 1) * s.stride + 1;
    std::vector<T> covered = read(s.lowest, span);
    std::vector<T> out;
    out.reserve(s.length);
    for (std::size_t k = 0; k < s.length; ++k) {
      const std::size_t at = s.step > 0 ? k * s.stride : span - 1 - k * s.stride;
      out.push_back(covered[at]);
    }
    return out;
  }

  /// Python's arr[start:stop:step] = values: `values` must have exactly as many elements as the
  /// slice (value_error otherwise, as Python's ValueError; the array cannot grow or shrink).
  /// Contiguous slices (step 1 or -1) go in one request per rank; with a longer step each element
  /// goes on its own, so the elements between are never rewritten.
  void set_slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::span<const T> values,
                 std::int64_t step = 1) {
    const auto s = resolve(start, stop, step);
    if (values.size() != s.length)
      throw value_error("mpiproc::array: a slice of " + std::to_string(s.length) + " elements cannot take " +
                        std::to_string(values.size()) + " values (an array keeps its size)");
    if (s.length == 0) return;
    if (s.stride == 1 && s.step > 0) return write(s.lowest, values);
    if (s.stride == 1) {
      const std::vector<T> reversed(values.rbegin(), values.rend());
      return write(s.lowest, reversed);
    }
    for (std::size_t k = 0; k < s.length; ++k) {
      const std::size_t at = s.step > 0 ? s.lowest + k * s.stride : s.lowest + (s.length - 1 - k) * s.stride;
      set(at, values[k]);
    }
  }
  /// Python's arr[start:stop] = values.
  void set_slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop,
                 const std::vector<T>& values) {
    set_slice(start, stop, std::span<const T>(values), 1);
  }

 private:
  /// A slice resolved as Python's slice.indices does: `length` elements, the lowest at `lowest`,
  /// `stride` apart, taken upwards for a positive `step`, downwards otherwise.
  struct resolved {
    std::size_t lowest = 0, length = 0, stride = 1;
    std::int64_t step = 1;
  };

  resolved resolve(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::int64_t step) const {
    if (step == 0) throw value_error("mpiproc::array: a slice step cannot be zero");
    if (step == INT64_MIN) throw usage_error("mpiproc::array: a slice step of -2^63");
    const auto n = static_cast<std::int64_t>(size_);
    const std::int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? n : n - 1;
    const auto bound = [&](std::optional<std::int64_t> b, std::int64_t none) {
      if (!b) return none;
      std::int64_t v = *b;
      if (v < 0) v = v < -n ? lower : v + n;
      return std::clamp(v, lower, upper);
    };
    const std::int64_t first = bound(start, step > 0 ? lower : upper);
    const std::int64_t last = bound(stop, step > 0 ? upper : lower);
    resolved out;
    out.step = step;
    out.stride = static_cast<std::size_t>(step > 0 ? step : -step);
    const auto stride = static_cast<std::int64_t>(out.stride);
    std::int64_t length = 0;
    if (step > 0 && first < last) length = (last - first - 1) / stride + 1;
    if (step < 0 && last < first) length = (first - last - 1) / stride + 1;
    out.length = static_cast<std::size_t>(length);
    if (length > 0) out.lowest = static_cast<std::size_t>(step > 0 ? first : first - (length - 1) * stride);
    return out;
  }

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

  std::size_t size_;
  std::size_t block_;
  std::unique_ptr<detail::shared_segment> data_;
};

}  // namespace mpiproc
