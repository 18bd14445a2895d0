#pragma once

#include <mpiproc/lock.hpp>

namespace mpiproc {

/// A lock the holding rank may take again (Python's multiprocessing.RLock); it is free once the
/// holder has unlocked it as many times as it locked it. Lockable and TimedLockable, with Python's
/// acquire() and release().
class recursive_mutex : public detail::python_lock_names<recursive_mutex> {
 public:
  /// Collective over `comm`.
  explicit recursive_mutex(const communicator& comm) : lock_(comm) {}

  void lock() {
    if (depth_ == 0) lock_.lock();
    ++depth_;
  }
  bool try_lock() {
    if (depth_ == 0 && !lock_.try_lock()) return false;
    ++depth_;
    return true;
  }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    if (depth_ == 0 && !lock_.try_lock_for(timeout)) return false;
    ++depth_;
    return true;
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& until) {
    return try_lock_for(until - Clock::now());
  }
  /// Throws usage_error if this rank does not hold it.
  void unlock();
  /// Whether this rank holds it, and how many times over.
  bool held() const noexcept { return depth_ > 0; }
  unsigned depth() const noexcept { return depth_; }

 private:
  mutex lock_;
  unsigned depth_ = 0;
};

/// Python's name: mpiproc::rlock is multiprocessing.RLock.
using rlock = recursive_mutex;

}  // namespace mpiproc
