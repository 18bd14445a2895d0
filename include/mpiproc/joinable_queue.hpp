#pragma once

#include <mpiproc/queue.hpp>

#include <chrono>

namespace mpiproc {

/// A queue that also counts unfinished work, like multiprocessing.JoinableQueue: every item put is
/// a task until a consumer calls task_done() for it, and join() waits until every task put so far
/// is done. Everything else is queue<T>'s (put, get, close, size...).
///
/// Construction is collective; task_done and join are not (any rank, any time, one thread per rank).
template <class T>
class joinable_queue : public queue<T> {
 public:
  /// Collective over `comm`.
  explicit joinable_queue(const communicator& comm, queue_options options = {}) : queue<T>(comm, options, true) {}

  /// One item taken earlier is finished. usage_error if called more times than items were put (as
  /// Python's ValueError), on the rank that called it; the count stays at zero.
  void task_done() { this->core().task_done(); }
  /// Waits until every item put (on any rank) has been task_done'd; at once if none is pending.
  void join() { this->core().join(std::nullopt); }
  /// As join(), but waits at most `timeout`: false if tasks were still pending then.
  template <class Rep, class Period>
  bool join_for(const std::chrono::duration<Rep, Period>& timeout) {
    return this->core().join(detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout));
  }
};

}  // namespace mpiproc
