#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/lock.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace mpiproc {

/// A condition variable across ranks (Python's multiprocessing.Condition), used with a lock:
/// wait() releases the lock, sleeps until notified, and takes the lock again. notify(n) gives n
/// wake-ups to the ranks waiting then (across nodes, the longest waiting first). As with
/// std::condition_variable, a wait may now and then return without a notify of its own, so wait
/// for a predicate: wait(pred). Lockable itself: locking the condition locks its lock.
class condition {
 public:
  /// Collective over `comm`, with a lock of its own.
  explicit condition(const communicator& comm);
  /// Collective over `comm`, with `lock` (which must outlive it).
  condition(const communicator& comm, mutex& lock);

  void lock() { lock_->lock(); }
  bool try_lock() { return lock_->try_lock(); }
  void unlock() { lock_->unlock(); }
  mutex& get_lock() noexcept { return *lock_; }

  /// With the lock held (else usage_error): waits for a notify.
  void wait() { wait_until_steady(std::nullopt); }
  /// Waits until `ready()` holds, checking it with the lock held.
  template <class Predicate>
  void wait(Predicate ready) {
    while (!ready()) wait();
  }
  /// Waits for a notify at most `timeout`; false if it timed out. The lock is held again either way.
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_steady(detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout));
  }
  /// Waits until `ready()` holds or `timeout` passes; returns `ready()`.
  template <class Rep, class Period, class Predicate>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout, Predicate ready) {
    const auto until = detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout);
    while (!ready())
      if (!wait_until_steady(until)) return ready();
    return true;
  }

  /// With the lock held (else usage_error): wakes up to `n` waiters, the longest waiting first.
  void notify(std::uint64_t n = 1);
  /// With the lock held: wakes every waiter.
  void notify_all();

 private:
  bool wait_until_steady(const detail::deadline& until);
  void require_lock(const char* what) const;

  std::unique_ptr<mutex> own_lock_;
  mutex* lock_;
  // Two words on rank 0: the ranks waiting and the wake-ups given and not
  // yet taken; a waiter takes one to wake.
  std::unique_ptr<detail::shared_segment> words_;
};

}  // namespace mpiproc
