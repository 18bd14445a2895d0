#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/atomic_bits.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/rlock.hpp>

#include <memory>
#include <mutex>
#include <type_traits>

namespace mpiproc {

/// One value shared by the ranks of a communicator, held on rank 0 (Python's
/// multiprocessing.Value). load() and store() are atomic by themselves; a read-modify-write
/// sequence needs get_lock(), or one of the atomic operations for integers.
template <class T>
class value {
  static_assert(std::is_trivially_copyable_v<T>, "mpiproc::value<T> needs a trivially copyable T");

 public:
  /// Collective over `comm`: starts as rank 0's `initial`.
  explicit value(const communicator& comm, const T& initial = T{})
      : lock_(comm), data_(std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? sizeof(T) : 0,
                                                                    &initial)) {}

  T load() {
    if constexpr (detail::atomic_sized<T>) {
      return detail::from_word<T>(data_->load(0, 0, sizeof(T)));
    } else {
      std::lock_guard guard(lock_);
      T out;
      data_->read(0, 0, &out, sizeof(T));
      return out;
    }
  }

  void store(const T& v) {
    if constexpr (detail::atomic_sized<T>) {
      data_->store(0, 0, detail::to_word(v), sizeof(T));
    } else {
      std::lock_guard guard(lock_);
      data_->write(0, 0, &v, sizeof(T));
    }
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

  /// The value's own lock, for read-modify-write sequences (re-entrant, as in Python, so load()
  /// and store() still work while it is held).
  rlock& get_lock() noexcept { return lock_; }

 private:
  rlock lock_;
  std::unique_ptr<detail::shared_segment> data_;
};

}  // namespace mpiproc
