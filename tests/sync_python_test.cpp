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

template <class T>
concept has_lock = requires(T& object) { object.get_lock(); };

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

TEST(ConditionPython, WaitReturnsTrueAndWaitForTakesThePredicateFirst) {
  // test_threading's test_waitfor and test_waitfor_timeout: rank 0 steps a state 0 -> 4 (or only
  // to 3) with a notify each time; the others wait for 4.
  for (const std::int64_t steps : {4, 3}) {
    mpiproc::condition cond(world());
    mpiproc::value<std::int64_t> state(world(), 0);
    mpiproc::counter waiting(world());
    if (rank() != 0) {
      std::unique_lock guard(cond);
      waiting.fetch_add(1);
      if (steps == 4) {
        EXPECT_TRUE(cond.wait_for([&] { return state.load() == 4; }));
        EXPECT_EQ(state.load(), 4);
      } else {
        const auto start = std::chrono::steady_clock::now();
        EXPECT_FALSE(cond.wait_for([&] { return state.load() == 4; }, 300ms)) << "state never reaches 4";
        EXPECT_GE(seconds_since(start), 0.3);
      }
    } else {
      ASSERT_TRUE(all_waiting(cond, waiting, size() - 1));
      for (std::int64_t i = 0; i < steps; ++i) {
        std::this_thread::sleep_for(10ms);
        std::lock_guard guard(cond);
        state.store(state.load() + 1);
        cond.notify_all();
      }
    }
    world().barrier();
  }
  mpiproc::condition cond(world());
  std::unique_lock guard(cond);
  EXPECT_TRUE(cond.wait([] { return true; }));
  EXPECT_FALSE(cond.wait(50ms)) << "Python's wait(timeout) is false when it timed out";
  EXPECT_FALSE(cond.wait_for([] { return false; }, 0ms));
  cond.notify(0);  // wakes nobody, and is no error
  guard.unlock();
  EXPECT_THROW(cond.notify_all(), usage_error);
  EXPECT_THROW(cond.wait(10ms), usage_error);
}

TEST(ConditionPython, UntimedWaitReturnsTrue) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::condition cond(world());
  mpiproc::counter waiting(world());
  if (rank() != 0) {
    std::unique_lock guard(cond);
    waiting.fetch_add(1);
    EXPECT_TRUE(cond.wait());
  } else {
    ASSERT_TRUE(all_waiting(cond, waiting, size() - 1));
    std::lock_guard guard(cond);
    cond.notify_all();
  }
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// Event

TEST(EventPython, WaitReturnsTheFlag) {
  mpiproc::event evt(world());
  EXPECT_FALSE(evt.wait(0ms));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(evt.wait(100ms));
  EXPECT_GE(seconds_since(start), 0.1);
  world().barrier();
  if (rank() == size() - 1) evt.set();
  EXPECT_TRUE(evt.wait());
  EXPECT_TRUE(evt.wait(0ms));
  EXPECT_TRUE(evt.wait_for(must_wake));
  world().barrier();
  if (rank() == 0) evt.clear();
  world().barrier();
  EXPECT_FALSE(evt.is_set());
}

// ---------------------------------------------------------------------------------------------
// Semaphore: Python's Semaphore() and BoundedSemaphore() start at 1.

TEST(LockPython, AcquireReleaseAndLockedAsPythonsLock) {
  mpiproc::lock lock(world());
  mpiproc::rlock rlock(world());
  // CPython's test_acquire_contended: one rank holds it, the others' non-blocking and timed
  // acquires fail, and locked() says so everywhere.
  if (rank() == 0) {
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(lock.acquire());
    EXPECT_TRUE(lock.locked());
    EXPECT_THROW(lock.acquire(), usage_error);  // Python would deadlock; rlock re-enters
  }
  world().barrier();
  if (rank() != 0) {
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(lock.acquire(false));
    EXPECT_FALSE(lock.acquire(50ms));
    EXPECT_THROW(lock.release(), usage_error);  // Python: RuntimeError, release unlocked lock
  }
  world().barrier();
  if (rank() == 0) lock.release();
  world().barrier();
  // Each rank in turn: acquire with a timeout always succeeds once the holder lets go.
  for (int turn = 0; turn < size(); ++turn) {
    if (rank() == turn) {
      EXPECT_TRUE(lock.acquire(must_wake));
      EXPECT_TRUE(rlock.acquire());
      EXPECT_TRUE(rlock.acquire(false));
      EXPECT_EQ(rlock.depth(), 2u);
      rlock.release();
      rlock.release();
      EXPECT_THROW(rlock.release(), usage_error);
      lock.release();
    }
    world().barrier();
  }
  EXPECT_FALSE(lock.locked());
}

TEST(SemaphorePython, StartsAtOneByDefault) {
  mpiproc::semaphore sem(world());
  mpiproc::bounded_semaphore bounded(world());
  EXPECT_EQ(sem.value(), 1u);
  EXPECT_EQ(bounded.value(), 1u);
  world().barrier();
  // Exactly one rank gets each.
  const bool got = sem.try_acquire(), got_bounded = bounded.try_acquire();
  const auto all = test::all_gather({got ? 1 : 0, got_bounded ? 1 : 0});
  std::int64_t sems = 0, boundeds = 0;
  for (std::size_t i = 0; i < all.size(); i += 2) sems += all[i], boundeds += all[i + 1];
  EXPECT_EQ(sems, 1);
  EXPECT_EQ(boundeds, 1);
  world().barrier();
  if (got_bounded) {
    bounded.release();
    EXPECT_THROW(bounded.release(), usage_error) << "past its start value of 1";
  }
  if (got) sem.release(2);  // unbounded: may go past 1
  world().barrier();
  EXPECT_EQ(sem.value(), 2u);
  EXPECT_EQ(bounded.value(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Barrier: test_threading's BarrierTests, one party per rank.

namespace {
/// Sums one count per rank (collective).
std::int64_t total(std::int64_t mine) {
  std::int64_t sum = 0;
  for (auto v : test::all_gather({mine})) sum += v;
  return sum;
}
}  // namespace

TEST(BarrierPython, EachRoundHandsOutEveryPlaceOnceAndRunsTheActionOnce) {
  // test_barrier, test_wait_return and test_action over 5 rounds.
  mpiproc::counter actions(world()), in_round(world());
  mpiproc::barrier step(world(), static_cast<std::uint64_t>(size()), [&] {
    // Runs before any call of the round returns: every party has arrived.
    EXPECT_EQ(in_round.load(), size());
    actions.fetch_add(1);
  });
  mpiproc::barrier plain(world());
  EXPECT_EQ(step.parties(), static_cast<std::uint64_t>(size()));
  std::vector<std::int64_t> places;
  for (int round = 1; round <= 5; ++round) {
    in_round.fetch_add(1);
    places.push_back(static_cast<std::int64_t>(step.wait()));
    EXPECT_EQ(actions.load(), round);
    EXPECT_EQ(in_round.load(), size());
    plain.wait();
    if (rank() == 0) in_round.store(0);
    plain.wait();
  }
  const auto all = test::all_gather(places);
  for (std::size_t round = 0; round < 5; ++round) {
    std::vector<std::int64_t> seen;
    for (int r = 0; r < size(); ++r) seen.push_back(all[static_cast<std::size_t>(r) * 5 + round]);
    std::sort(seen.begin(), seen.end());
    std::vector<std::int64_t> expected(static_cast<std::size_t>(size()));
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(seen, expected) << "round " << round;
  }
  EXPECT_EQ(actions.load(), 5);
  EXPECT_FALSE(step.broken());
  EXPECT_EQ(step.n_waiting(), 0u);
}

TEST(BarrierPython, SinglePartyNeverWaits) {
  mpiproc::counter actions(world());
  mpiproc::barrier alone(world(), 1, [&] { actions.fetch_add(1); });
  EXPECT_EQ(alone.wait(), 0u);
  EXPECT_EQ(alone.wait(), 0u);
  world().barrier();
  EXPECT_EQ(actions.load(), 2 * size());
}

namespace {
/// CPython's test_abort step: the call with place N/2 aborts the barrier, the others wait again
/// (which throws); counts the waits that passed and that broke.
void abort_from_the_middle(mpiproc::barrier& step, std::int64_t& passed, std::int64_t& broken) {
  try {
    // As in Python, an abort that comes before a released rank has seen its round end may reach
    // that rank's first wait too: either way it is broken.
    if (step.wait() == static_cast<std::uint64_t>(size() / 2)) {
      step.abort();
    } else {
      step.wait();
      ++passed;
    }
  } catch (const mpiproc::broken_barrier_error&) {
    ++broken;
  }
}
}  // namespace

TEST(BarrierPython, AbortBreaksItForTheWaitersAndLaterCalls) {
  // test_abort: the call with place N/2 aborts; every other rank's next wait throws.
  mpiproc::barrier step(world());
  std::int64_t passed = 0, broken = 0;
  abort_from_the_middle(step, passed, broken);
  EXPECT_TRUE(step.broken());
  EXPECT_THROW(step.wait(), mpiproc::broken_barrier_error) << "broken until reset";
  EXPECT_EQ(total(passed), 0);
  EXPECT_EQ(total(broken), size() - 1);
}

TEST(BarrierPython, ResetWhileRanksWaitBreaksTheirWaitThenItWorksAgain) {
  // test_reset: the call with place N/2 waits until the others wait again, then resets.
  mpiproc::barrier step(world());
  std::int64_t passed = 0, broken = 0;
  const auto place = step.wait();
  if (place == static_cast<std::uint64_t>(size() / 2)) {
    EXPECT_TRUE(eventually([&] { return step.n_waiting() == static_cast<std::uint64_t>(size() - 1); }));
    step.reset();
  } else {
    try {
      step.wait();
      ++passed;
    } catch (const mpiproc::broken_barrier_error&) {
      ++broken;
    }
  }
  // The barrier works again at once.
  step.wait();
  EXPECT_FALSE(step.broken());
  EXPECT_EQ(total(passed), 0);
  EXPECT_EQ(total(broken), size() - 1);
}

TEST(BarrierPython, AbortThenResetMakesItUsableAgain) {
  // test_abort_and_reset, with a second barrier to order the reset.
  mpiproc::barrier step(world()), order(world());
  std::int64_t passed = 0, broken = 0;
  abort_from_the_middle(step, passed, broken);
  if (order.wait() == static_cast<std::uint64_t>(size() / 2)) step.reset();
  order.wait();
  EXPECT_FALSE(step.broken());
  step.wait();
  EXPECT_EQ(total(passed), 0);
  EXPECT_EQ(total(broken), size() - 1);
}

TEST(BarrierPython, ATimedOutWaitBreaksItForEveryone) {
  // test_timeout: one rank comes late; every rank's wait(0.5 s) throws, the late one's too.
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::barrier step(world());
  if (step.wait() == static_cast<std::uint64_t>(size() / 2)) std::this_thread::sleep_for(3s);
  EXPECT_THROW(step.wait(500ms), mpiproc::broken_barrier_error);
  EXPECT_TRUE(step.broken());
}

TEST(BarrierPython, ADefaultTimeoutAppliesToWait) {
  // test_default_timeout.
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::barrier step(world(), static_cast<std::uint64_t>(size()), {}, 300ms);
  if (step.wait() == static_cast<std::uint64_t>(size() / 2)) std::this_thread::sleep_for(3s);
  EXPECT_THROW(step.wait(), mpiproc::broken_barrier_error);
}

TEST(BarrierPython, AThrowingActionBreaksItAndTheThrowerSeesItsException) {
  mpiproc::barrier step(world(), static_cast<std::uint64_t>(size()), [] { throw std::runtime_error("action failed"); });
  std::int64_t own = 0, broken = 0;
  try {
    step.wait();
  } catch (const mpiproc::broken_barrier_error&) {
    ++broken;
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "action failed");
    ++own;
  }
  EXPECT_EQ(total(own), 1);
  EXPECT_EQ(total(broken), size() - 1);
  EXPECT_TRUE(step.broken());
}

TEST(BarrierPython, NWaitingCountsTheCallsOfTheRoundBeingFilled) {
  mpiproc::barrier step(world(), static_cast<std::uint64_t>(size()) + 1);
  EXPECT_EQ(step.n_waiting(), 0u);
  world().barrier();
  if (rank() == 0) {
    // Every other rank waits in a round that needs one call more than there are ranks.
    EXPECT_TRUE(eventually([&] { return step.n_waiting() == static_cast<std::uint64_t>(size() - 1); }));
    step.abort();
  } else {
    EXPECT_THROW(step.wait(), mpiproc::broken_barrier_error);
  }
  world().barrier();
  EXPECT_EQ(step.n_waiting(), 0u) << "a broken barrier has nobody waiting in it";
  world().barrier();
  if (rank() == 0) step.reset();
  world().barrier();
  EXPECT_FALSE(step.broken());
  EXPECT_EQ(step.n_waiting(), 0u);
}

// ---------------------------------------------------------------------------------------------
// RawValue, RawArray and slices

TEST(RawValue, HasNoLockAndStillAtomicWords) {
  mpiproc::raw_value<std::int64_t> hits(world());
  mpiproc::raw_value<double> half(world(), 0.5);
  struct wide {
    std::int64_t a, b, c;
  };
  mpiproc::raw_value<wide> triple(world(), wide{1, 2, 3});
  static_assert(!has_lock<mpiproc::raw_value<int>> && has_lock<mpiproc::value<int>>, "RawValue has no lock");
  for (int i = 0; i < 100; ++i) hits.fetch_add(1);
  EXPECT_EQ(half.load(), 0.5);
  world().barrier();
  EXPECT_EQ(hits.load(), 100 * size());
  if (rank() == size() - 1) triple.store({4, 5, 6});
  world().barrier();
  const wide w = triple.load();
  EXPECT_EQ(w.a * 100 + w.b * 10 + w.c, 456);
  mpiproc::value<int> locked(world(), 3);
  EXPECT_EQ(locked.get_obj().load(), 3);
  world().barrier();
}

TEST(RawArray, SlicesReadAndWriteSubRangesAsPythonDoes) {
  for (auto where : {mpiproc::layout::on_rank0, mpiproc::layout::blocks}) {
    std::vector<int> start(10);
    std::iota(start.begin(), start.end(), 0);  // [0, 1, ..., 9]
    mpiproc::raw_array<int> a(world(), start, where);
    static_assert(!has_lock<mpiproc::raw_array<int>> && has_lock<mpiproc::array<int>>, "RawArray has no lock");
    using v = std::vector<int>;
    EXPECT_EQ(a.get_slice(2, 5), (v{2, 3, 4}));
    EXPECT_EQ(a.get_slice(-3, std::nullopt), (v{7, 8, 9}));
    EXPECT_EQ(a.get_slice(std::nullopt, -8), (v{0, 1}));
    EXPECT_EQ(a.get_slice(-100, 100), start) << "bounds clamp";
    EXPECT_EQ(a.get_slice(7, 3), v{}) << "a reversed range is empty";
    EXPECT_EQ(a.get_slice(std::nullopt, std::nullopt, 3), (v{0, 3, 6, 9}));
    EXPECT_EQ(a.get_slice(std::nullopt, std::nullopt, -1), (v{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
    EXPECT_EQ(a.get_slice(8, 1, -3), (v{8, 5, 2}));
    EXPECT_EQ(a.get_slice(1, 8, 3), (v{1, 4, 7}));
    EXPECT_THROW(a.get_slice(0, 5, 0), mpiproc::value_error);
    EXPECT_THROW(a.set_slice(0, 3, v{1, 2}), mpiproc::value_error) << "an array keeps its size";
    world().barrier();
    if (rank() == size() - 1) {
      a.set_slice(1, 4, v{-1, -2, -3});          // a[1:4] = [-1, -2, -3]
      a.set_slice(-2, std::nullopt, v{80, 90});  // a[-2:] = [80, 90]
      const v odd{-5, -7};
      a.set_slice(6, 3, odd, -2);  // a[6:3:-2] = [-5, -7]: a[6] = -5, a[4] = -7
      a.set_slice(5, 5, v{});      // empty, fine
    }
    world().barrier();
    EXPECT_EQ(a.read(), (v{0, -1, -2, -3, -7, 5, -5, 7, 80, 90}));
    EXPECT_THROW(a.get(10), usage_error);
    world().barrier();
  }
  mpiproc::array<int> locked(world(), 4);
  EXPECT_EQ(locked.get_obj().get_slice(std::nullopt, std::nullopt), (std::vector<int>(4, 0)));
  world().barrier();
}
