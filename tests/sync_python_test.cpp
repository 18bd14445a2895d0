// Python's semantics for the rank-wide synchronization primitives, as CPython's test_threading and
// _test_multiprocessing check them: a notify wakes ranks waiting at that moment and no later
// ones, wait() returns true, a Barrier can be aborted, reset, timed out and given an action,
// Semaphore starts at 1, RawValue/RawArray have no lock, and arrays take slices.
//
// "Must wake" waits get 20 s (4 ranks share 2 cores with other work); "must time out" waits get a
// fraction of a second.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <chrono>
#include <numeric>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;
using mpiproc::usage_error;
using test::seconds_since;
using test::world;

namespace {

int rank() { return world().rank(); }
int size() { return world().size(); }

constexpr auto must_wake = 20s;

/// Polls `done` every millisecond for at most 20 s; whether it came true.
template <class Done>
bool eventually(Done done) {
  const auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (seconds_since(start) > 20.0) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Rank 0's view of how many ranks are inside cond.wait: `waiting` is counted under the lock just
/// before the wait, which lets the lock go only once the rank is registered as a waiter.
bool all_waiting(mpiproc::condition& cond, mpiproc::counter& waiting, std::int64_t n) {
  return eventually([&] {
    std::lock_guard guard(cond);
    return waiting.load() == n;
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Condition: notify(n) wakes n of the ranks waiting at that moment, longest waiting first.

TEST(ConditionWakeUps, ANotifierThatWaitsAtOnceDoesNotTakeItsOwnWakeUp) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::condition cond(world());
  mpiproc::counter waiting(world());
  if (rank() != 0) {
    std::unique_lock guard(cond);
    waiting.fetch_add(1);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(cond.wait_for(must_wake)) << "slept through a notify";
    EXPECT_LT(seconds_since(start), 15.0);
  } else {
    ASSERT_TRUE(all_waiting(cond, waiting, size() - 1));
    for (int k = 1; k < size(); ++k) {
      std::unique_lock guard(cond);
      cond.notify();
      // Nobody notifies rank 0: its own notify is not for it.
      EXPECT_FALSE(cond.wait_for(200ms)) << "the notifier took the wake-up it gave";
    }
  }
  world().barrier();
}

TEST(ConditionWakeUps, AWokenRankThatWaitsAgainDoesNotTakeAnotherRanksWakeUp) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::condition cond(world());
  mpiproc::counter waiting(world()), woke(world());
  if (rank() != 0) {
    std::unique_lock guard(cond);
    waiting.fetch_add(1);
    EXPECT_TRUE(cond.wait_for(must_wake)) << "slept through notify_all";
    woke.fetch_add(1);
    // A wait that starts after the notify_all is not woken by it.
    EXPECT_FALSE(cond.wait_for(300ms)) << "a second wait took a wake-up meant for a first";
  } else {
    ASSERT_TRUE(all_waiting(cond, waiting, size() - 1));
    {
      std::unique_lock guard(cond);
      cond.notify_all();
      EXPECT_FALSE(cond.wait_for(300ms)) << "notify_all woke a wait that began after it";
    }
  }
  world().barrier();
  EXPECT_EQ(woke.load(), size() - 1);
}

TEST(ConditionWakeUps, NotifyNWakesExactlyNOfTheWaiters) {
  if (size() < 3) GTEST_SKIP() << "needs 3 ranks";
  mpiproc::condition cond(world());
  mpiproc::counter waiting(world()), woke(world());
  const std::int64_t waiters = size() - 1, first = waiters - 1;
  if (rank() != 0) {
    std::unique_lock guard(cond);
    waiting.fetch_add(1);
    EXPECT_TRUE(cond.wait_for(2 * must_wake)) << "never woken";
    woke.fetch_add(1);
  } else {
    ASSERT_TRUE(all_waiting(cond, waiting, waiters));
    {
      std::lock_guard guard(cond);
      cond.notify(static_cast<std::uint64_t>(first));
    }
    EXPECT_TRUE(eventually([&] { return woke.load() >= first; }));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(woke.load(), first) << "notify(" << first << ") with " << waiters << " waiters";
    {
      std::lock_guard guard(cond);
      cond.notify(5);  // more than are waiting: wakes the one left
    }
    EXPECT_TRUE(eventually([&] { return woke.load() == waiters; }));
  }
  world().barrier();
  EXPECT_EQ(woke.load(), waiters);
}

TEST(ConditionWakeUps, NotifyWakesTheLongestWaitingFirst) {
  if (size() < 3) GTEST_SKIP() << "needs 3 ranks";
  mpiproc::condition cond(world());
  mpiproc::counter waiting(world()), position(world());
  mpiproc::array<std::int64_t> order(world(), static_cast<std::size_t>(size()));
  if (rank() != 0) {
    // Ranks 1, 2, ... start waiting in rank order.
    ASSERT_TRUE(eventually([&] {
      std::lock_guard guard(cond);
      return waiting.load() == rank() - 1;
    }));
    std::unique_lock guard(cond);
    waiting.fetch_add(1);
    EXPECT_TRUE(cond.wait_for(2 * must_wake));
    order.set(static_cast<std::size_t>(position.fetch_add(1)), rank());
  } else {
    ASSERT_TRUE(all_waiting(cond, waiting, size() - 1));
    for (int k = 1; k < size(); ++k) {
      {
        std::lock_guard guard(cond);
        cond.notify();
      }
      EXPECT_TRUE(eventually([&] { return position.load() == k; }));
    }
  }
  world().barrier();
  const auto got = order.read(0, static_cast<std::size_t>(size() - 1));
  std::vector<std::int64_t> expected(static_cast<std::size_t>(size() - 1));
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(got, expected);
}

TEST(ConditionWakeUps, ManyRoundsOfNotifyAndWaitLoseNothing) {
  // A ping-pong over one condition: each rank in turn waits for its turn and then passes it on
  // with notify_all; everyone must see every turn without relying on timeouts.
  mpiproc::condition cond(world());
  mpiproc::value<std::int64_t> turn(world(), 0);
  const std::int64_t rounds = 30;
  for (std::int64_t r = 0; r < rounds; ++r) {
    std::unique_lock guard(cond);
    const std::int64_t mine = r * size() + rank();
    EXPECT_TRUE(cond.wait_for(must_wake, [&] { return turn.load() == mine; })) << "turn " << mine;
    turn.store(mine + 1);  // even after a failed wait, so that one lost wake-up fails only once
    cond.notify_all();
  }
  world().barrier();
  EXPECT_EQ(turn.load(), rounds * size());
}
