#pragma once

#include <chrono>

namespace mpiproc::detail {

/// Python's names for a lock's calls, beside std's, for mutex and recursive_mutex (CRTP).
template <class Lock>
class python_lock_names {
 public:
  /// Python's acquire(blocking=True): lock() and true, or try_lock() when not blocking.
  bool acquire(bool blocking = true) {
    if (!blocking) return self().try_lock();
    self().lock();
    return true;
  }
  /// Python's acquire(timeout=t): try_lock_for(t).
  template <class Rep, class Period>
  bool acquire(const std::chrono::duration<Rep, Period>& timeout) {
    return self().try_lock_for(timeout);
  }
  /// Python's release(): unlock() (usage_error if this rank does not hold the lock).
  void release() { self().unlock(); }

 private:
  Lock& self() { return static_cast<Lock&>(*this); }
};

}  // namespace mpiproc::detail
