#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/lock.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>

namespace mpiproc {

/// A condition variable across ranks (Python's multiprocessing.Condition), used with a lock:
/// wait() releases the lock, sleeps until notified, and takes the lock again. notify(n) wakes n
/// of the ranks waiting at that moment, the longest waiting first; a wait that begins later
/// (the notifier's own, or a woken rank's next one) is not woken by it. Lockable itself: locking
/// the condition locks its lock. One wait per rank at a time (a rank is one waiter).
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

  /// With the lock held (else usage_error): waits for a notify; returns true (Python's
  /// Condition.wait() without a timeout). The lock is held again when it returns or throws.
  bool wait() { return wait_until_steady(std::nullopt); }
  /// Waits for a notify at most `timeout`: true if notified, false if it timed out (Python's
  /// wait(timeout)). The lock is held again either way.
  template <class Rep, class Period>
  bool wait(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_for(timeout);
  }
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_steady(deadline_after(timeout));
  }
  /// Waits until `ready()` holds, checking it with the lock held; returns true (its value).
  template <std::predicate Predicate>
  bool wait(Predicate ready) {
    while (!ready()) wait();
    return true;
  }
  /// Python's wait_for(predicate): the same as wait(ready).
  template <std::predicate Predicate>
  bool wait_for(Predicate ready) {
    return wait(std::move(ready));
  }
  /// Waits until `ready()` holds or `timeout` passes; returns `ready()`'s last value, checked with
  /// the lock held (Python's wait_for(predicate, timeout)). Either argument order works.
  template <std::predicate Predicate, class Rep, class Period>
  bool wait_for(Predicate ready, const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = deadline_after(timeout);
    bool result = ready();
    while (!result) {
      if (detail::clock::now() >= *deadline) break;
      wait_until_steady(deadline);
      result = ready();
    }
    return result;
  }
  /// std::condition_variable's order: wait_for(timeout, ready).
  template <class Rep, class Period, std::predicate Predicate>
  bool wait_for(const std::chrono::duration<Rep, Period>& timeout, Predicate ready) {
    return wait_for(std::move(ready), timeout);
  }

  /// With the lock held (else usage_error): wakes up to `n` of the ranks waiting now, the longest
  /// waiting first (none for n = 0).
  void notify(std::uint64_t n = 1);
  /// With the lock held (else usage_error): wakes every rank waiting now.
  void notify_all();

 private:
  template <class Rep, class Period>
  static detail::deadline deadline_after(const std::chrono::duration<Rep, Period>& timeout) {
    return detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout);
  }
  bool wait_until_steady(const detail::deadline& until);
  void require_lock(const char* what) const;

  std::unique_ptr<mutex> own_lock_;
  mutex* lock_;
  // On rank 0: the next ticket, then a slot per rank holding its wait's ticket (0: not waiting).
  std::unique_ptr<detail::shared_segment> words_;
};

}  // namespace mpiproc
