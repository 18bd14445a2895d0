#pragma once

// The result of a submitted task (task_pool.hpp), like concurrent.futures.Future and
// multiprocessing's AsyncResult: get with or without a timeout, ready, cancel; wait_any and
// as_completed over several.

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/pool_core.hpp>
#include <mpiproc/error.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc {

class task_pool;

namespace detail {
inline deadline after_seconds(double seconds) {
  if (!(seconds >= 0)) throw usage_error("mpiproc: a timeout must be 0 or more seconds");
  return clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
}
}  // namespace detail

/// The result of a task submitted to a task_pool, on the rank that submitted it. Waiting (get,
/// wait, wait_any, as_completed) runs the pool's tasks meanwhile: this rank's own, else tasks
/// taken from other ranks, so the waiting rank works rather than sits. Copies share the result.
template <class R>
class future;

namespace detail {
template <class R>
std::size_t wait_among(const std::vector<future<R>>& futures, const std::vector<std::size_t>& among,
                       const deadline& until);
}  // namespace detail

template <class R>
class future {
 public:
  /// A future of no task (valid() is false).
  future() = default;

  bool valid() const noexcept { return state_ != nullptr; }
  /// Whether the task's outcome is known (Python's done()): a result, an error, cancelled, or
  /// past its time limit. Never waits.
  bool ready() const { return pool_->ready(checked()); }
  /// Whether the task was cancelled.
  bool cancelled() const { return checked().status.load() == detail::task_status::cancelled; }
  /// Waits until ready(), working meanwhile.
  void wait() const { wait_until(std::nullopt); }
  /// Waits until ready() or `timeout` seconds passed: whether it is ready.
  bool wait(double timeout) const { return wait_until(detail::after_seconds(timeout)); }
  /// The task's result once ready (waiting as wait() does). Throws remote_error naming the rank
  /// it ran on and its message if the task threw, cancelled_error if it was cancelled, and
  /// timeout_error if it ran past its time limit. May be called again: the same result.
  R get() const {
    wait();
    return result();
  }
  /// As get(), but throws timeout_error if the result is not there within `timeout` seconds (the
  /// task goes on; get may be called again).
  R get(double timeout) const {
    if (!wait(timeout)) throw timeout_error("mpiproc: future::get: no result within " + std::to_string(timeout) + " s");
    return result();
  }
  /// Cancels the task if it has not started: true if it is cancelled (now or before), false if it
  /// ran, runs, or left this rank's queue for another rank's (which may be running it).
  bool cancel() {
    checked();
    return pool_->cancel(*state_);
  }

 private:
  friend class task_pool;
  template <class U>
  friend std::size_t detail::wait_among(const std::vector<future<U>>&, const std::vector<std::size_t>&,
                                        const detail::deadline&);

  future(std::shared_ptr<detail::pool_core> pool, std::shared_ptr<detail::task_state> state)
      : pool_(std::move(pool)), state_(std::move(state)) {}

  detail::task_state& checked() const {
    if (!state_) throw usage_error("mpiproc: a future of no task (default-constructed)");
    return *state_;
  }
  bool wait_until(const detail::deadline& until) const {
    detail::task_state& state = checked();
    return detail::pool_core::settled(state) ||
           work_until([&state] { return detail::pool_core::settled(state); }, until);
  }
  /// Runs the pool's tasks until done() or `until`: whether done().
  bool work_until(const std::function<bool()>& done, const detail::deadline& until) const {
    checked();
    if (pool_->closed()) throw usage_error("mpiproc: waiting on a future whose pool ended before its task did");
    return pool_->work_until(done, until);
  }
  R result() const {
    std::lock_guard guard(state_->lock);
    switch (state_->status.load()) {
      case detail::task_status::done:
        if constexpr (std::is_void_v<R>)
          return;
        else
          return detail::from_bytes<R>(state_->bytes);
      case detail::task_status::failed: throw remote_error(state_->rank, state_->bytes, 1);
      case detail::task_status::cancelled: throw cancelled_error(state_->bytes);
      case detail::task_status::timed_out: throw timeout_error(state_->bytes);
      case detail::task_status::pending: break;
    }
    throw error("mpiproc: future: no outcome after waiting (a bug)");
  }

  std::shared_ptr<detail::pool_core> pool_;
  std::shared_ptr<detail::task_state> state_;
};

namespace detail {
/// Waits (working) until one of futures[among[k]] is ready or `until` passes: that k, the lowest
/// ready one, or among.size(). usage_error for no futures.
template <class R>
std::size_t wait_among(const std::vector<future<R>>& futures, const std::vector<std::size_t>& among,
                       const deadline& until) {
  if (among.empty()) throw usage_error("mpiproc: wait_any of no futures");
  const auto first_ready = [&] {
    for (std::size_t k = 0; k < among.size(); ++k)
      if (detail::pool_core::settled(futures[among[k]].checked())) return k;
    return among.size();
  };
  if (const std::size_t k = first_ready(); k < among.size()) return k;
  futures[among.front()].work_until([&] { return first_ready() < among.size(); }, until);
  return first_ready();
}
}  // namespace detail

/// Waits until one of `futures` is ready (working meanwhile, as future::wait) and returns its
/// index: the lowest ready one. With a timeout, futures.size() if none was ready by then, like
/// concurrent.futures.wait(..., return_when=FIRST_COMPLETED). usage_error for no futures.
template <class R>
std::size_t wait_any(const std::vector<future<R>>& futures, std::optional<double> timeout = std::nullopt) {
  std::vector<std::size_t> all(futures.size());
  for (std::size_t k = 0; k < all.size(); ++k) all[k] = k;
  const std::size_t k =
      detail::wait_among(futures, all, timeout ? detail::after_seconds(*timeout) : detail::deadline{});
  return k < all.size() ? all[k] : futures.size();
}

/// The futures of `futures`' tasks in the order they become ready, like
/// concurrent.futures.as_completed: `for (std::size_t k : as_completed(fs)) use(fs[k].get());`
/// gives their indices, each once, waiting (and working) for the next as the loop asks for it.
template <class R>
class completion_order {
 public:
  explicit completion_order(const std::vector<future<R>>& futures) : futures_(futures), left_(futures.size()) {
    for (std::size_t k = 0; k < left_.size(); ++k) left_[k] = k;
  }

  class iterator {
   public:
    std::size_t operator*() const { return current_; }
    iterator& operator++() {
      current_ = order_->next();
      return *this;
    }
    bool operator==(const iterator& other) const { return current_ == other.current_; }

   private:
    friend class completion_order;
    iterator(completion_order* order, std::size_t current) : order_(order), current_(current) {}
    completion_order* order_;
    std::size_t current_;
  };

  iterator begin() { return iterator(this, next()); }
  iterator end() { return iterator(this, futures_.size()); }

 private:
  /// The next future to become ready that was not given yet; futures.size() when none is left.
  std::size_t next() {
    if (left_.empty()) return futures_.size();
    const std::size_t k = detail::wait_among(futures_, left_, std::nullopt);
    const std::size_t index = left_[k];
    left_[k] = left_.back();
    left_.pop_back();
    return index;
  }

  const std::vector<future<R>>& futures_;
  std::vector<std::size_t> left_;  // the indices not given yet
};

/// See completion_order.
template <class R>
completion_order<R> as_completed(const std::vector<future<R>>& futures) {
  return completion_order<R>(futures);
}

}  // namespace mpiproc
