#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>

namespace mpiproc {

/// A counting semaphore across the ranks of a communicator (Python's multiprocessing.Semaphore):
/// acquire() takes one unit, waiting while there is none; release(n) gives n back. Waiting ranks
/// sleep rather than spin.
class semaphore {
 public:
  /// Collective over `comm`: starts with `initial` units (1 by default, as Python's Semaphore()).
  explicit semaphore(const communicator& comm, std::uint64_t initial = 1);

  void acquire();
  /// Takes a unit if one is free now.
  bool try_acquire();
  template <class Rep, class Period>
  bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return acquire_until(detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout));
  }
  template <class Clock, class Duration>
  bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& until) {
    return try_acquire_for(until - Clock::now());
  }
  /// Gives back `n` units. Throws usage_error past the limit (a bounded_semaphore's start value).
  void release(std::uint64_t n = 1);
  /// The units free now (already stale when it returns while others use the semaphore).
  std::uint64_t value();

 protected:
  semaphore(const communicator& comm, std::uint64_t initial, std::uint64_t limit);

 private:
  bool acquire_until(const detail::deadline& until);

  std::unique_ptr<detail::shared_segment> units_;  // one word on rank 0
  std::uint64_t limit_ = std::numeric_limits<std::uint64_t>::max();
};

/// A semaphore that may never hold more units than it started with (Python's BoundedSemaphore):
/// releasing more than was acquired is a usage_error instead of a silent extra unit.
class bounded_semaphore : public semaphore {
 public:
  /// Collective over `comm`: starts with, and may never exceed, `initial` units (1 by default, as
  /// Python's BoundedSemaphore()).
  explicit bounded_semaphore(const communicator& comm, std::uint64_t initial = 1) : semaphore(comm, initial, initial) {}
};

}  // namespace mpiproc
