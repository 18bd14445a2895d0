#pragma once

// The untyped runtime behind task_pool and future (task_pool.hpp, future.hpp): each rank's queue
// of tasks, the stealing between ranks, the results' way back and the end of the pool.

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/clock.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mpiproc::detail {

/// What became of a task, as its submitting rank knows it.
enum class task_status : std::uint8_t { pending, done, failed, cancelled, timed_out };

/// One submitted task on its submitting rank: what its future reads.
struct task_state {
  std::mutex lock;  // bytes and rank, and status's change from pending
  std::atomic<task_status> status{task_status::pending};  // read without the lock
  std::string bytes;  // done: the result's encoding; failed: the error's message
  int rank = -1;      // failed: the rank the task ran on
  std::uint64_t id = 0;
  deadline limit;     // the task's time limit ends here (none: no limit)
  double limit_seconds = 0;
};

/// A rank's side of a task pool. Its messages (tasks placed, steals, results) travel on its own
/// communicator: the main thread takes them while it waits in the pool (work_until, ready), and
/// the service thread takes steals while the rank computes (or runs a long task), so a busy rank's
/// queue still serves the others. The rank runs tasks itself only inside pool calls that wait (wait, close).
class pool_core {
 public:
  /// Runs a task on its encoded arguments: its encoded result, or what it throws.
  using runner = std::function<std::string(const std::string& args)>;

  /// Collective over `comm`.
  explicit pool_core(const communicator& comm);
  /// Abandons the pool where close() was not called.
  ~pool_core();
  pool_core(const pool_core&) = delete;
  pool_core& operator=(const pool_core&) = delete;

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }

  /// Not collective, in the same order on every rank: the number of a new kind of task.
  std::uint32_t define(runner run, std::uint64_t signature);
  /// A task of kind `function` on `args`, queued on `where` (this rank for -1), with a time limit
  /// in seconds (0: none). usage_error once closed.
  std::shared_ptr<task_state> submit(std::uint32_t function, std::uint64_t signature, std::string args, int where,
                                     double time_limit);
  /// Runs tasks (this rank's, else other ranks') until done() or `until` passes; true if done().
  /// done() is asked under no lock, again after each task and each result that arrives, and
  /// again after it returned true (so it must stay true).
  bool work_until(const std::function<bool()>& done, const deadline& until);
  /// Whether `state` is settled, settling it as timed out where its limit passed.
  static bool settled(task_state& state);
  /// As settled(), after taking the outcomes that came for this rank meanwhile.
  bool ready(task_state& state);
  /// Removes `state`'s task if it has not left this rank's queue: true if it did (it is then
  /// cancelled), false if it runs or ran.
  bool cancel(task_state& state);
  /// Collective: runs tasks until every rank closed and no task is left anywhere.
  void close();
  bool closed() const noexcept;
  /// Not collective: leaves the pool without the others (while an exception unwinds).
  void abandon() noexcept;

  struct shared;

 private:
  std::shared_ptr<shared> shared_;  // also held by the service thread's handler
  int rank_ = 0, size_ = 1;
};

}  // namespace mpiproc::detail
