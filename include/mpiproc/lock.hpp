#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/clock.hpp>
#include <mpiproc/detail/python_lock_names.hpp>

#include <chrono>
#include <memory>

namespace mpiproc {

namespace detail {
class lock_algorithm;
}  // namespace detail

/// Mutual exclusion across the ranks of a communicator (Python's multiprocessing.Lock). Meets the
/// standard Lockable and TimedLockable requirements: std::lock_guard, std::unique_lock and
/// std::scoped_lock work, and Python's acquire() and release() (detail::python_lock_names). Held by
/// a rank, not a thread: use it from one thread of each rank at a time.
///
/// Fairness: ranks that wait queue in arrival order, and none starves. Across nodes the owner's
/// service hands the lock to the queue's head on every unlock. On one node, a rank that finds the
/// lock free takes it at once, even past a queue (as a futex mutex does): with more ranks than
/// cores a strict hand-off would wait for the next rank in line to be scheduled at every unlock,
/// far slower (the README's benchmark section gives the figures). Once the queue's head has
/// waited 1 ms, the lock switches to strict hand-off until the queue drains.
class mutex : public detail::python_lock_names<mutex> {
 public:
  /// Collective over `comm`.
  explicit mutex(const communicator& comm);
  /// Collective (frees the lock's words); while an exception unwinds, this rank leaves them.
  ~mutex();
  mutex(mutex&&) noexcept;
  mutex& operator=(mutex&&) noexcept;

  /// Blocks until this rank holds the lock. Throws usage_error if it already does (that would
  /// wait forever; use rlock to re-enter).
  void lock();
  /// Takes the lock if it is free now; false if another rank holds it or has queued for it, or
  /// this rank holds it already.
  bool try_lock();
  /// Tries until the time passes. A timed try does not queue: it takes the lock when it sees it
  /// free, so under heavy contention the queue of lock() callers may keep it busy throughout.
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_until_steady(detail::clock::now() +
                                 std::chrono::ceil<detail::clock::duration>(timeout));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& until) {
    return try_lock_for(until - Clock::now());
  }
  /// Releases the lock. Throws usage_error if this rank does not hold it.
  void unlock();
  /// Whether this rank holds the lock.
  bool held() const noexcept { return held_; }

  /// Python's locked(): whether some rank holds the lock or is being handed it now (stale as soon
  /// as it returns while other ranks use the lock).
  bool locked();

 private:
  bool try_lock_until_steady(detail::clock::time_point until);

  /// Picked once, at construction, as the shared state's transport says: on the messages path
  /// (across nodes) a ticket queue that the owner's service serves; in shared memory (one node) a
  /// state word taken in place, with hand-off to a starving queue (see src/lock.cpp).
  std::unique_ptr<detail::lock_algorithm> algorithm_;
  bool held_ = false;
};

/// The name Python users know: mpiproc::lock is multiprocessing.Lock.
using lock = mutex;

}  // namespace mpiproc
