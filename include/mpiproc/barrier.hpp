#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

namespace mpiproc {

/// A reusable barrier (Python's multiprocessing.Barrier / threading.Barrier): wait() returns once
/// `parties` calls have arrived, round after round. Unlike MPI_Barrier, the parties need not be
/// all the ranks: any ranks may make the calls, a rank even several in one round.
///
/// As in Python it can break: abort(), reset() while calls wait, a wait that times out, or an
/// action that throws. Every wait then waiting, and every later one, throws broken_barrier_error
/// until reset(). Only the constructor is collective; the rest is any rank's, at any time.
class barrier {
 public:
  using duration = std::chrono::nanoseconds;

  /// Collective over `comm`: one party per rank.
  explicit barrier(const communicator& comm);
  /// Collective over `comm`: `parties` calls make a round (usage_error if 0). `action`, if any,
  /// runs once per round on the rank that arrives last, before any call of the round returns
  /// (every rank should pass the same one; only the last arrival's runs). If it throws, the
  /// barrier breaks and that wait throws the action's exception, the others broken_barrier_error.
  /// `timeout` is the default for wait() (none: wait() waits as long as it takes).
  barrier(const communicator& comm, std::uint64_t parties, std::function<void()> action = {},
          std::optional<duration> timeout = std::nullopt);

  /// Waits for the rest of this round (at most the default timeout, if the barrier has one);
  /// returns this call's place in the round, 0 to parties - 1, in order of arrival. Throws
  /// broken_barrier_error if the barrier is or becomes broken, or breaks it and throws if the
  /// timeout passes before the round is complete (as Python's Barrier.wait).
  std::uint64_t wait() {
    return wait_until_steady(default_timeout_ ? deadline_after(*default_timeout_) : std::nullopt);
  }
  /// As wait(), with this timeout instead of the default one.
  template <class Rep, class Period>
  std::uint64_t wait(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_steady(deadline_after(std::chrono::ceil<detail::clock::duration>(timeout)));
  }

  /// Breaks the barrier: every call waiting now, and every later one until reset(), throws
  /// broken_barrier_error (Python's abort()).
  void abort();
  /// Returns the barrier to its empty state; calls waiting now throw broken_barrier_error (Python's
  /// reset()). A round already complete still returns normally.
  void reset();
  /// Whether the barrier is broken (Python's broken).
  bool broken();
  /// How many calls wait in the round being filled (Python's n_waiting); stale as soon as read.
  std::uint64_t n_waiting();
  std::uint64_t parties() const noexcept { return parties_; }

 private:
  static detail::deadline deadline_after(detail::clock::duration timeout) { return detail::clock::now() + timeout; }
  std::uint64_t wait_until_steady(const detail::deadline& until);
  /// The calls of a round leave one by one; the last one out lets the next round in.
  void leave();
  void break_barrier();

  // One word on rank 0: the state (filling, releasing, draining, resetting or broken) in the top
  // 3 bits, and the calls inside the barrier below them.
  std::unique_ptr<detail::shared_segment> word_;
  std::uint64_t parties_;
  std::function<void()> action_;
  std::optional<detail::clock::duration> default_timeout_;
};

}  // namespace mpiproc
