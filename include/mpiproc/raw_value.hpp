#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/atomic_bits.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <memory>
#include <type_traits>

namespace mpiproc {

/// One value shared by the ranks of a communicator, held on rank 0, without a lock (Python's
/// multiprocessing.RawValue). For T of 1, 2, 4 or 8 bytes each operation is atomic by itself;
/// a wider T is copied byte by byte, so a load racing a store may see parts of both: guard it
/// with a lock of your own, or use value<T>, which does.
template <class T>
class raw_value {
  static_assert(std::is_trivially_copyable_v<T>, "mpiproc::raw_value<T> needs a trivially copyable T");

 public:
  /// Collective over `comm`: starts as rank 0's `initial`.
  explicit raw_value(const communicator& comm, const T& initial = T{})
      : data_(std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? sizeof(T) : 0, &initial)) {}

  T load() {
    if constexpr (detail::atomic_sized<T>) {
      return detail::from_word<T>(data_->load(0, 0, sizeof(T)));
    } else {
      T out;
      data_->read(0, 0, &out, sizeof(T));
      return out;
    }
  }

  void store(const T& v) {
    if constexpr (detail::atomic_sized<T>)
      data_->store(0, 0, detail::to_word(v), sizeof(T));
    else
      data_->write(0, 0, &v, sizeof(T));
  }

  /// Stores `v`; returns the value before.
  T exchange(const T& v)
    requires detail::atomic_sized<T>
  {
    return detail::from_word<T>(data_->exchange(0, 0, detail::to_word(v), sizeof(T)));
  }

  /// If the value's bytes equal `expected`'s, stores `desired`; otherwise loads it into `expected`.
  bool compare_exchange(T& expected, const T& desired)
    requires detail::atomic_sized<T>
  {
    std::uint64_t seen = detail::to_word(expected);
    const bool ok = data_->compare_exchange(0, 0, seen, detail::to_word(desired), sizeof(T));
    expected = detail::from_word<T>(seen);
    return ok;
  }

  /// Adds `delta` (wrapping as the unsigned type of T's size does); returns the value before.
  T fetch_add(T delta)
    requires detail::atomic_integral<T>
  {
    return detail::from_word<T>(data_->fetch_add(0, 0, detail::to_word(delta), sizeof(T)));
  }
  T fetch_sub(T delta)
    requires detail::atomic_integral<T>
  {
    return detail::from_word<T>(data_->fetch_add(0, 0, 0 - detail::to_word(delta), sizeof(T)));
  }

 private:
  std::unique_ptr<detail::shared_segment> data_;
};

}  // namespace mpiproc
