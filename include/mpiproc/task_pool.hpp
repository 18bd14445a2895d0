#pragma once

// Tasks submitted at run time from any rank, with futures: concurrent.futures' submit and
// Pool.apply_async across MPI ranks. C++ cannot send a function to another process, so every
// rank defines the same tasks in the same order (define), and a submit names one of them with
// its arguments.

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/pool_core.hpp>
#include <mpiproc/future.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace mpiproc {

class task_pool;

/// A kind of task a task_pool runs (made by task_pool::define): a function R(Args...) that
/// every rank knows under the same number. A plain value, cheap to copy and to capture.
template <class Signature>
class task;

template <class R, class... Args>
class task<R(Args...)> {
 public:
  using result_type = R;
  /// A handle of no task, to assign define's result to (a task that submits itself captures it).
  task() = default;

 private:
  friend class task_pool;
  explicit task(std::uint32_t number) : number_(number) {}
  std::uint32_t number_ = std::numeric_limits<std::uint32_t>::max();
};

/// How one task is submitted (task_pool::submit).
struct task_options {
  /// The rank that runs the task (-1: any: it waits in the submitting rank's queue, and an idle
  /// rank may take it from there). A placed task goes straight to that rank, which runs it when it
  /// next waits in the pool (get, wait, close), no other rank taking it, so a rank that waits for
  /// it outside the pool (in a collective of its own, say) waits forever.
  int rank = -1;
  /// Seconds from the submit after which the task's future fails with timeout_error, if no result
  /// came by then (0: no limit). A task that has not started by then never starts; one that runs
  /// goes on (a function cannot be stopped from outside), and its result is dropped.
  double time_limit = 0;
};

namespace detail {
template <class F>
struct callable_parts;
template <class R, class... A>
struct callable_parts<std::function<R(A...)>> {
  using type = R(A...);
};
template <class... A>
inline constexpr bool takes_pool = false;
template <class First, class... A>
inline constexpr bool takes_pool<First, A...> = std::is_same_v<First, task_pool&>;
}  // namespace detail

/// A pool of every rank of a communicator that runs submitted tasks: each rank submits tasks
/// whenever it likes (tasks too may submit tasks), and runs tasks while it waits for a result
/// (future::get, wait_any, as_completed) and in close(). A task waits in its submitter's queue;
/// a rank with nothing to run takes the oldest half (up to 1024) of another rank's queue,
/// answered by that rank's service thread even while it computes, so no rank sits idle as a
/// master and a busy rank's tasks still run. Results go back to the submitter in batches, which
/// it takes when it next looks (a wait, future::ready). A task that throws fails its own future
/// (remote_error naming the rank and the message); the pool goes on.
///
///   mpiproc::task_pool pool(world);
///   auto square = pool.define([](std::int64_t x) { return x * x; });
///   std::vector<mpiproc::future<std::int64_t>> fs;
///   for (std::int64_t x = 0; x < 100; ++x) fs.push_back(pool.submit(square, x));
///   for (auto& f : fs) total += f.get();
///   pool.close();  // every rank, when it has nothing more to submit
///
/// Arguments and results are any types mpiproc's encoding carries (trivially copyable, strings,
/// vectors, Boost.Serialization). Needs MPI_THREAD_MULTIPLE. For one thread of each rank.
class task_pool {
 public:
  /// Collective over `comm`.
  explicit task_pool(const communicator& comm) : core_(std::make_shared<detail::pool_core>(comm)) {}
  /// close() where it was not called; while an exception unwinds, leaves without the others.
  ~task_pool() {
    if (core_->closed()) return;
    if (std::uncaught_exceptions() > 0) {
      core_->abandon();
      return;
    }
    try {
      core_->close();
    } catch (...) {
      core_->abandon();
    }
  }
  task_pool(const task_pool&) = delete;
  task_pool& operator=(const task_pool&) = delete;

  int rank() const noexcept { return core_->rank(); }
  int size() const noexcept { return core_->size(); }

  /// Every rank, in the same order (not collective: no rank waits): `fn` as a kind of task, a
  /// function of its arguments (a lambda without auto parameters, or a function). If its first
  /// parameter is task_pool&, it gets the pool, to submit more tasks. A task submitted by a rank
  /// whose definitions differ fails with a usage message in its future.
  template <class F>
  auto define(F fn) {
    return define_as(std::move(fn), std::type_identity<typename detail::callable_parts<decltype(std::function{fn})>::type>{});
  }

  /// Submits `t` on `args` (converted to its parameters' types): its future. From any rank, any
  /// time before close(), from tasks too.
  template <class R, class... Args, class... A>
    requires(sizeof...(A) == sizeof...(Args) && (std::is_constructible_v<std::decay_t<Args>, A &&> && ...))
  future<R> submit(const task<R(Args...)>& t, A&&... args) {
    return submit(task_options{}, t, std::forward<A>(args)...);
  }
  /// Submits `t` on `args` as `options` say (where it waits, a time limit).
  template <class R, class... Args, class... A>
    requires(sizeof...(A) == sizeof...(Args) && (std::is_constructible_v<std::decay_t<Args>, A &&> && ...))
  future<R> submit(const task_options& options, const task<R(Args...)>& t, A&&... args) {
    if (t.number_ == std::numeric_limits<std::uint32_t>::max())
      throw usage_error("mpiproc: task_pool::submit of a task handle that define() did not make");
    detail::byte_writer out;
    (out.put(std::decay_t<Args>(std::forward<A>(args))), ...);
    return future<R>(core_, core_->submit(t.number_, signature<R, Args...>(), out.take(), options.rank,
                                          options.time_limit));
  }

  /// Collective: runs tasks until every rank has called close() and every task submitted anywhere
  /// is done, then returns on every rank together; every future is ready by then. Later submits
  /// are a usage_error. Once only (later calls return at once).
  void close() { core_->close(); }

 private:
  template <class R, class... Args>
  static std::uint64_t signature() {
    return typeid(R(std::decay_t<Args>...)).hash_code();
  }

  template <class F, class R, class... A>
  auto define_as(F fn, std::type_identity<R(A...)>) {
    if constexpr (detail::takes_pool<A...>)
      return define_with_pool(std::move(fn), std::type_identity<R(A...)>{});
    else
      return define_runner<false, R, A...>(std::move(fn));
  }
  template <class F, class R, class Pool, class... A>
  auto define_with_pool(F fn, std::type_identity<R(Pool, A...)>) {
    return define_runner<true, R, A...>(std::move(fn));
  }
  /// Defines fn as a task of the arguments A... (after this pool, where WithPool).
  template <bool WithPool, class R, class... A, class F>
  auto define_runner(F fn) {
    using Result = std::decay_t<R>;
    const std::uint32_t number = core_->define(
        [this, fn = std::move(fn)](const std::string& bytes) mutable -> std::string {
          detail::byte_reader in{std::string_view(bytes)};
          std::tuple<std::decay_t<A>...> args{in.template get<std::decay_t<A>>()...};
          const auto call = [&](auto&... a) -> decltype(auto) {
            if constexpr (WithPool)
              return std::invoke(fn, *this, std::move(a)...);
            else
              return std::invoke(fn, std::move(a)...);
          };
          if constexpr (std::is_void_v<R>) {
            std::apply(call, args);
            return {};
          } else {
            const Result result = std::apply(call, args);
            return detail::to_bytes(result);
          }
        },
        signature<Result, A...>());
    return task<Result(std::decay_t<A>...)>(number);
  }

  std::shared_ptr<detail::pool_core> core_;
};

}  // namespace mpiproc
