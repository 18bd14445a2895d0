#pragma once

// multiprocessing.Process over a task pool: a target and its arguments, started, joined, alive or
// not, with an exit code, and (beyond Python) the target's return value. Where Python forks a
// process, the target runs as a task of the pool: on whichever rank is free to run it.

#include <mpiproc/error.hpp>
#include <mpiproc/future.hpp>
#include <mpiproc/task_pool.hpp>

#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace mpiproc {

/// Like multiprocessing.Process(target=..., args=...), on the rank that makes it:
///
///   mpiproc::process p(pool, task1);  // task1 = pool.define(...), as every rank does
///   p.start();
///   p.join();
///
/// is_alive() is true from start() until the target ends; exitcode() is empty until then, 0 if it
/// returned and 1 if it threw (Python's code for an uncaught exception); result() gives what it
/// returned, or throws what get() throws (remote_error naming the rank it ran on).
template <class R, class... Args>
class process {
 public:
  process(task_pool& pool, task<R(Args...)> target, Args... args)
      : pool_(&pool), target_(target), args_(std::move(args)...) {}

  /// Starts the target: usage_error if started before (Python: "cannot start a process twice").
  void start() {
    if (started_.valid()) throw usage_error("mpiproc: process::start: a process can be started once");
    started_ = std::apply([&](const Args&... a) { return pool_->submit(target_, a...); }, args_);
  }
  /// Waits until the target ended, running the pool's tasks meanwhile (see future::wait).
  void join() { started().wait(); }
  /// Waits at most `timeout` seconds: whether the target ended.
  bool join(double timeout) { return started().wait(timeout); }
  /// Started and not ended.
  bool is_alive() const { return started_.valid() && !started_.ready(); }
  /// Empty before the end; then 0 if the target returned, 1 if it threw or ran past a limit.
  std::optional<int> exitcode() const {
    if (!started_.valid() || !started_.ready()) return std::nullopt;
    try {
      started_.get();
      return 0;
    } catch (const error&) {
      return 1;
    }
  }
  /// The target's result once it ended (waiting for it as join() does).
  R result() const { return started().get(); }

 private:
  const future<R>& started() const {
    if (!started_.valid()) throw usage_error("mpiproc: process: can only join a started process");
    return started_;
  }

  task_pool* pool_;
  task<R(Args...)> target_;
  std::tuple<Args...> args_;
  future<R> started_;
};

template <class R, class... Args, class... A>
process(task_pool&, task<R(Args...)>, A&&...) -> process<R, Args...>;

}  // namespace mpiproc
