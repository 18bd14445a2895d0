#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/atomic_bits.hpp>
#include <mpiproc/raw_value.hpp>
#include <mpiproc/rlock.hpp>

#include <mutex>
#include <type_traits>

namespace mpiproc {

/// One value shared by the ranks of a communicator, held on rank 0, with a lock (Python's
/// multiprocessing.Value; raw_value<T> is RawValue, without one). load() and store() are atomic
/// by themselves (a T wider than 8 bytes takes the lock for them); a read-modify-write sequence
/// needs get_lock(), or one of the atomic operations for integers.
template <class T>
class value {
  static_assert(std::is_trivially_copyable_v<T>, "mpiproc::value<T> needs a trivially copyable T");

 public:
  /// Collective over `comm`: starts as rank 0's `initial`.
  explicit value(const communicator& comm, const T& initial = T{}) : lock_(comm), raw_(comm, initial) {}

  T load() {
    if constexpr (detail::atomic_sized<T>) {
      return raw_.load();
    } else {
      std::lock_guard guard(lock_);
      return raw_.load();
    }
  }

  void store(const T& v) {
    if constexpr (detail::atomic_sized<T>) {
      raw_.store(v);
    } else {
      std::lock_guard guard(lock_);
      raw_.store(v);
    }
  }

  /// Stores `v`; returns the value before.
  T exchange(const T& v)
    requires detail::atomic_sized<T>
  {
    return raw_.exchange(v);
  }

  /// If the value's bytes equal `expected`'s, stores `desired`; otherwise loads it into `expected`.
  bool compare_exchange(T& expected, const T& desired)
    requires detail::atomic_sized<T>
  {
    return raw_.compare_exchange(expected, desired);
  }

  /// Adds `delta` (wrapping as the unsigned type of T's size does); returns the value before.
  T fetch_add(T delta)
    requires detail::atomic_integral<T>
  {
    return raw_.fetch_add(delta);
  }
  T fetch_sub(T delta)
    requires detail::atomic_integral<T>
  {
    return raw_.fetch_sub(delta);
  }

  /// The value's own lock, for read-modify-write sequences (re-entrant, as in Python, so load()
  /// and store() still work while it is held).
  rlock& get_lock() noexcept { return lock_; }
  /// The value without its lock (Python's get_obj()).
  raw_value<T>& get_obj() noexcept { return raw_; }

 private:
  rlock lock_;
  raw_value<T> raw_;
};

}  // namespace mpiproc
