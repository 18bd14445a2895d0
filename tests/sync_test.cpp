// Rank-wide synchronization and shared values: exact totals under a lock, a counter that hands out
// every number once, a semaphore that never admits too many, events, conditions and barriers that
// wake every waiter, timed waits that time out, and misuse reported as usage_error.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <array>
#include <chrono>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;
using mpiproc::usage_error;
using test::seconds_since;
using test::world;

namespace {

// The standard library's lock helpers accept our locks (Lockable / TimedLockable).
template <class L>
concept timed_lockable = requires(L& l) {
  l.lock();
  l.unlock();
  { l.try_lock() } -> std::same_as<bool>;
  { l.try_lock_for(1ms) } -> std::same_as<bool>;
  { l.try_lock_until(std::chrono::steady_clock::now()) } -> std::same_as<bool>;
};
static_assert(timed_lockable<mpiproc::lock>);
static_assert(timed_lockable<mpiproc::rlock>);
static_assert(requires(mpiproc::lock& a, mpiproc::rlock& b, mpiproc::condition& c) {
  std::lock_guard{a};
  std::unique_lock{b};
  std::scoped_lock{a, b, c};
});

int rank() { return world().rank(); }
int size() { return world().size(); }

/// Iterations per rank for contended loops: fewer when ranks outnumber the 2 cores.
int rounds(int busy_total) { return busy_total / size(); }

}  // namespace

TEST(Lock, ReadModifyWriteUnderTheLockLosesNoUpdate) {
  mpiproc::lock lock(world());
  mpiproc::value<std::int64_t> shared(world());
  const int n = rounds(8000);
  for (int i = 0; i < n; ++i) {
    std::lock_guard guard(lock);
    shared.store(shared.load() + 1);  // not atomic by itself: only the lock makes it exact
  }
  world().barrier();
  EXPECT_EQ(shared.load(), std::int64_t{n} * size());
}

TEST(Lock, ServesWaitersInArrivalOrder) {
  if (size() < 3) GTEST_SKIP() << "needs 3 ranks";
  mpiproc::lock lock(world());
  mpiproc::counter arrived(world());
  mpiproc::array<std::int64_t> order(world(), static_cast<std::size_t>(size()));
  mpiproc::counter position(world());
  if (rank() == 0) lock.lock();
  world().barrier();
  if (rank() != 0) {
    // Queue one after another: rank r starts 100 ms after rank r - 1 announced itself, which is
    // ample time for r - 1's ticket request.
    while (arrived.load() != rank() - 1) std::this_thread::sleep_for(1ms);
    if (rank() > 1) std::this_thread::sleep_for(100ms);
    arrived.fetch_add(1);
  }
  if (rank() == 0) {
    while (arrived.load() != size() - 1) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(300ms);
    order.set(static_cast<std::size_t>(position.fetch_add(1)), 0);
    lock.unlock();
  } else {
    lock.lock();
    order.set(static_cast<std::size_t>(position.fetch_add(1)), rank());
    lock.unlock();
  }
  world().barrier();
  std::vector<std::int64_t> expected(static_cast<std::size_t>(size()));
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order.read(), expected);
}

TEST(Lock, ARankLockingWithoutPauseDoesNotStarveTheOthers) {
  // Rank 0 takes and releases the lock in a tight loop; every other rank still gets it 20 times,
  // each within a bound far above the 1 ms after which the lock is handed over in queue order.
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::lock lock(world());
  mpiproc::counter finished(world());
  world().barrier();
  if (rank() == 0) {
    while (finished.load() < size() - 1) {
      lock.lock();
      lock.unlock();
    }
  } else {
    double longest = 0;
    for (int i = 0; i < 20; ++i) {
      const auto start = std::chrono::steady_clock::now();
      lock.lock();
      longest = std::max(longest, seconds_since(start));
      lock.unlock();
      std::this_thread::sleep_for(200us);
    }
    finished.fetch_add(1);
    EXPECT_LT(longest, 5.0) << "a waiting rank starved";
  }
  world().barrier();
}

TEST(Lock, TryLockSeesAHeldLockAndTimesOut) {
  mpiproc::lock lock(world());
  if (rank() == 0) { ASSERT_TRUE(lock.try_lock()); }
  world().barrier();
  if (rank() != 0) {
    EXPECT_FALSE(lock.try_lock());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(lock.try_lock_for(100ms));
    EXPECT_GE(seconds_since(start), 0.1);
  } else {
    EXPECT_FALSE(lock.try_lock()) << "a rank's second try while it holds the lock";
  }
  world().barrier();
  if (rank() == 0) lock.unlock();
  // Now free: every rank gets it within a generous time, one after another.
  EXPECT_TRUE(lock.try_lock_for(30s));
  lock.unlock();
}

TEST(Lock, MisuseIsAUsageError) {
  mpiproc::lock lock(world());
  EXPECT_THROW(lock.unlock(), usage_error);
  lock.lock();
  EXPECT_THROW(lock.lock(), usage_error) << "locking twice would wait forever";
  lock.unlock();
  EXPECT_THROW(lock.unlock(), usage_error);
  mpiproc::rlock rlock(world());
  EXPECT_THROW(rlock.unlock(), usage_error);
}

TEST(Lock, HeldWhileTheHolderThrowsIsReleasedAndTheOthersSeeTheError) {
  mpiproc::lock lock(world());
  mpiproc::counter entered(world());
  const int thrower = size() - 1;
  try {
    mpiproc::for_each(world(), mpiproc::range<int>{0, size()}, [&](int) {
      std::lock_guard guard(lock);
      entered.fetch_add(1);
      if (rank() == thrower) throw std::runtime_error("failed while holding the lock");
    });
    ADD_FAILURE() << "no error on rank " << rank();
  } catch (const mpiproc::remote_error& e) {
    EXPECT_EQ(e.rank(), thrower);
    EXPECT_EQ(e.message(), "failed while holding the lock");
  }
  // Ranks still queued when the thrower failed get the error instead of the lock.
  EXPECT_GE(entered.load(), 1);
  EXPECT_FALSE(lock.held());
}

TEST(Failure, RanksWaitingOnSharedStateForAFailedRankGetItsError) {
  // The last rank fails inside a collective call while the others wait for something only it
  // could give: a barrier round, an event, a semaphore unit, the lock it holds. Nobody may hang;
  // every rank gets the failed rank's own error (not the broken waits').
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int thrower = size() - 1;
  const char* kinds[] = {"barrier", "event", "semaphore", "lock", "condition"};
  for (const std::string kind : kinds) {
    mpiproc::barrier step(world());
    mpiproc::event never(world());
    mpiproc::semaphore empty(world(), 0);
    mpiproc::lock lock(world());
    mpiproc::condition cond(world());
    if (rank() == thrower) lock.lock();  // and never unlocks it
    world().barrier();
    try {
      mpiproc::for_each(world(), mpiproc::range<int>{0, size()}, [&](int) {
        if (rank() == thrower) {
          std::this_thread::sleep_for(50ms);
          throw std::runtime_error("gave up on " + kind);
        }
        if (kind == "barrier") step.wait();
        if (kind == "event") never.wait();
        if (kind == "semaphore") empty.acquire();
        if (kind == "lock") lock.lock();
        if (kind == "condition") {
          std::unique_lock guard(cond);
          cond.wait();
        }
        ADD_FAILURE() << "a wait for the failed rank returned: " << kind;
      });
      ADD_FAILURE() << "no error on rank " << rank();
    } catch (const mpiproc::remote_error& e) {
      EXPECT_EQ(e.rank(), thrower) << kind;
      EXPECT_EQ(e.message(), "gave up on " + kind);
      EXPECT_EQ(e.failed_ranks(), 1) << kind;
    }
    // From now on a wait that would block throws at once.
    EXPECT_THROW(never.wait_for(30s), mpiproc::error) << kind;
  }
}

TEST(RLock, TheHolderReentersAndOthersWait) {
  mpiproc::rlock lock(world());
  mpiproc::value<std::int64_t> shared(world());
  const int n = rounds(2000);
  for (int i = 0; i < n; ++i) {
    std::lock_guard outer(lock);
    std::lock_guard inner(lock);
    EXPECT_EQ(lock.depth(), 2u);
    shared.store(shared.load() + 1);
  }
  EXPECT_FALSE(lock.held());
  world().barrier();
  EXPECT_EQ(shared.load(), std::int64_t{n} * size());
}

TEST(Counter, HandsOutEveryNumberExactlyOnce) {
  mpiproc::counter next(world());
  const std::int64_t total = 20000;
  std::vector<std::int64_t> mine;
  for (std::int64_t i = next.fetch_add(1); i < total; i = next.fetch_add(1)) mine.push_back(i);
  auto all = test::all_gather(mine);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(static_cast<std::size_t>(total));
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
}

TEST(Counter, LoadStoreExchangeCompareExchange) {
  mpiproc::counter c(world(), -5);
  EXPECT_EQ(c.load(), -5);
  world().barrier();
  c.fetch_add(3);
  world().barrier();
  EXPECT_EQ(c.load(), -5 + 3 * size());
  world().barrier();
  // Exactly one rank wins a compare-exchange from the same expected value.
  std::int64_t expected = -5 + 3 * size();
  const bool won = c.compare_exchange(expected, 1000 + rank());
  const auto winners = test::all_gather({won ? 1 : 0});
  EXPECT_EQ(std::accumulate(winners.begin(), winners.end(), std::int64_t{0}), 1);
  if (!won) { EXPECT_GE(expected, 1000); }
  world().barrier();
  if (rank() == 0) {
    EXPECT_GE(c.exchange(7), 1000);
    c.store(-1);
  }
  world().barrier();
  EXPECT_EQ(c.load(), -1);
  EXPECT_EQ(c.fetch_sub(0), -1);
}

TEST(Semaphore, NeverAdmitsMoreThanItsCount) {
  for (std::uint64_t count : {1u, 2u}) {
    mpiproc::semaphore sem(world(), count);
    mpiproc::counter inside(world()), most(world()), passes(world());
    const int n = rounds(2000);
    for (int i = 0; i < n; ++i) {
      sem.acquire();
      const std::int64_t now = inside.fetch_add(1) + 1;
      for (std::int64_t seen = most.load(); now > seen && !most.compare_exchange(seen, now);) {
      }
      passes.fetch_add(1);
      inside.fetch_sub(1);
      sem.release();
    }
    world().barrier();
    EXPECT_LE(most.load(), static_cast<std::int64_t>(count));
    EXPECT_EQ(passes.load(), std::int64_t{n} * size());
    EXPECT_EQ(sem.value(), count);
    world().barrier();
  }
}

TEST(Semaphore, TryAndTimedAcquireFailWhenEmpty) {
  mpiproc::semaphore sem(world(), 0);
  EXPECT_FALSE(sem.try_acquire());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(sem.try_acquire_for(100ms));
  EXPECT_GE(seconds_since(start), 0.1);
  world().barrier();
  if (rank() == 0) sem.release(static_cast<std::uint64_t>(size()));
  EXPECT_TRUE(sem.try_acquire_for(30s)) << "every rank takes one of the units released";
  world().barrier();
  EXPECT_EQ(sem.value(), 0u);
}

TEST(Semaphore, BoundedRejectsOverRelease) {
  mpiproc::bounded_semaphore sem(world(), 2);
  world().barrier();
  EXPECT_THROW(sem.release(), usage_error);
  EXPECT_EQ(sem.value(), 2u);
  world().barrier();
  const int takers = std::min(size(), 2);
  if (rank() < takers) sem.acquire();
  world().barrier();
  if (rank() == 0) {
    sem.release(static_cast<std::uint64_t>(takers));
    EXPECT_THROW(sem.release(), usage_error);
  }
  world().barrier();
  EXPECT_EQ(sem.value(), 2u);
}

TEST(Event, SetWakesEveryWaiterAndTimedWaitsTimeOut) {
  mpiproc::event ready(world());
  EXPECT_FALSE(ready.is_set());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(ready.wait_for(100ms));
  EXPECT_GE(seconds_since(start), 0.1);
  world().barrier();
  if (rank() == 0) {
    std::this_thread::sleep_for(50ms);
    ready.set();
  }
  ready.wait();
  EXPECT_TRUE(ready.is_set());
  world().barrier();
  if (rank() == 0) ready.clear();
  world().barrier();
  EXPECT_FALSE(ready.is_set());
  EXPECT_FALSE(ready.wait_for(10ms));
}

TEST(Event, ASetThatIsClearedAtOnceStillWakesTheWaiters) {
  mpiproc::event pulse(world());
  mpiproc::counter waiting(world());
  if (rank() != 0) {
    waiting.fetch_add(1);
    EXPECT_TRUE(pulse.wait_for(30s));
  } else {
    while (waiting.load() != size() - 1) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms);
    pulse.set();
    pulse.clear();
  }
  world().barrier();
  EXPECT_FALSE(pulse.is_set());
}

TEST(Condition, NotifyAllWakesEveryWaiter) {
  mpiproc::condition cond(world());
  mpiproc::value<int> flag(world(), 0);
  mpiproc::counter woke(world());
  if (rank() != 0) {
    std::unique_lock guard(cond);
    cond.wait([&] { return flag.load() == 1; });
    woke.fetch_add(1);
  } else {
    std::this_thread::sleep_for(50ms);
    std::lock_guard guard(cond);
    flag.store(1);
    cond.notify_all();
  }
  world().barrier();
  EXPECT_EQ(woke.load(), size() - 1);
}

TEST(Condition, NotifyOneHandsOutItemsOneByOne) {
  // Rank 0 puts size - 1 items, one notify each; every other rank takes exactly one.
  mpiproc::condition cond(world());
  mpiproc::value<std::int64_t> items(world());
  mpiproc::counter taken(world());
  if (rank() == 0) {
    for (int i = 1; i < size(); ++i) {
      std::this_thread::sleep_for(5ms);
      std::lock_guard guard(cond);
      items.store(items.load() + 1);
      cond.notify();
    }
  } else {
    std::unique_lock guard(cond);
    EXPECT_TRUE(cond.wait_for(60s, [&] { return items.load() > 0; }));
    items.store(items.load() - 1);
    taken.fetch_add(1);
  }
  world().barrier();
  EXPECT_EQ(taken.load(), size() - 1);
  EXPECT_EQ(items.load(), 0);
}

TEST(Condition, TimedWaitTimesOutHoldingTheLockAndMisuseIsAnError) {
  mpiproc::condition cond(world());
  EXPECT_THROW(cond.wait(), usage_error);
  EXPECT_THROW(cond.notify(), usage_error);
  std::unique_lock guard(cond);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(cond.wait_for(100ms));
  EXPECT_GE(seconds_since(start), 0.1);
  EXPECT_TRUE(cond.get_lock().held());
}

TEST(Condition, ATimedOutWaitDoesNotSwallowALaterNotify) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::condition cond(world());
  mpiproc::counter waiting(world());
  if (rank() == 0) {
    std::unique_lock guard(cond);
    EXPECT_FALSE(cond.wait_for(20ms));
  }
  world().barrier();
  if (rank() == 1) {
    std::unique_lock guard(cond);
    waiting.fetch_add(1);  // under the lock, which only the wait below lets go
    EXPECT_TRUE(cond.wait_for(30s)) << "the notify went to the wait that had timed out";
  } else if (rank() == 0) {
    while (waiting.load() == 0) std::this_thread::sleep_for(1ms);
    std::lock_guard guard(cond);
    cond.notify();
  }
  world().barrier();
}

TEST(Barrier, ReusedOverManyRoundsKeepsRanksInStep) {
  mpiproc::barrier step(world());
  mpiproc::array<std::int64_t> round_of(world(), static_cast<std::size_t>(size()), mpiproc::layout::blocks);
  std::vector<std::int64_t> places;
  for (int round = 1; round <= 100; ++round) {
    round_of.set(static_cast<std::size_t>(rank()), round);
    places.push_back(static_cast<std::int64_t>(step.wait()));
    for (int r = 0; r < size(); ++r) ASSERT_EQ(round_of.get(static_cast<std::size_t>(r)), round);
    step.wait();
  }
  // In each round, the places 0..size-1 went out once each.
  const auto all = test::all_gather(places);
  for (std::size_t round = 0; round < 100; ++round) {
    std::vector<std::int64_t> seen;
    for (int r = 0; r < size(); ++r) seen.push_back(all[static_cast<std::size_t>(r) * 100 + round]);
    std::sort(seen.begin(), seen.end());
    std::vector<std::int64_t> expected(static_cast<std::size_t>(size()));
    std::iota(expected.begin(), expected.end(), 0);
    ASSERT_EQ(seen, expected) << "round " << round;
  }
}

TEST(Barrier, APartyCountOtherThanTheRanks) {
  EXPECT_THROW(mpiproc::barrier(world(), 0), usage_error);
  // Every rank but the last takes part: size - 1 parties (1 on one rank).
  const int parties = std::max(1, size() - 1);
  mpiproc::barrier some(world(), static_cast<std::uint64_t>(parties));
  mpiproc::counter calls(world());
  if (rank() < parties)
    for (int round = 1; round <= 50; ++round) {
      calls.fetch_add(1);
      some.wait();
      ASSERT_GE(calls.load(), round * parties) << "left the barrier before every party arrived";
    }
  world().barrier();
  EXPECT_EQ(calls.load(), 50 * parties);
}

TEST(Value, StoresLoadsAndAtomicArithmetic) {
  mpiproc::value<double> pi(world());
  mpiproc::value<int> tally(world(), 10);
  struct wide {
    std::int64_t a, b, c;
  };
  mpiproc::value<wide> triple(world(), wide{1, 2, 3});
  if (rank() == size() - 1) {
    pi.store(3.1415927);
    triple.store({4, 5, 6});
  }
  tally.fetch_add(2);
  world().barrier();
  EXPECT_EQ(pi.load(), 3.1415927);
  EXPECT_EQ(tally.load(), 10 + 2 * size());
  const wide w = triple.load();
  EXPECT_EQ(w.a + w.b + w.c, 15);
  world().barrier();
  // int wraps at 32 bits and compare-exchange sees the exact int.
  if (rank() == 0) {
    tally.store(2147483647);
    EXPECT_EQ(tally.fetch_add(1), 2147483647);
    int expected = -2147483647 - 1;
    EXPECT_TRUE(tally.compare_exchange(expected, 7));
    EXPECT_EQ(tally.exchange(8), 7);
    EXPECT_EQ(tally.fetch_sub(10), 8);
    EXPECT_EQ(tally.load(), -2);
  }
  world().barrier();
}

TEST(Array, ElementAndBulkAccessOnOneRankAndInBlocks) {
  for (auto where : {mpiproc::layout::on_rank0, mpiproc::layout::blocks}) {
    const std::size_t n = 37;
    std::vector<int> start(n);
    std::iota(start.begin(), start.end(), 0);
    mpiproc::array<int> a(world(), start, where);
    EXPECT_EQ(a.size(), n);
    EXPECT_EQ(a.read(), start);
    world().barrier();
    // Each rank negates its share, element by element.
    for (std::size_t i = static_cast<std::size_t>(rank()); i < n; i += static_cast<std::size_t>(size()))
      a.set(i, -a.get(i));
    world().barrier();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(a.get(i), -static_cast<int>(i));
    world().barrier();
    // A bulk write across every block, from the last rank.
    if (rank() == size() - 1) {
      std::vector<int> tens(n - 2, 10);
      a.write(1, tens);
    }
    world().barrier();
    const auto got = a.read(0, n);
    EXPECT_EQ(got.front(), 0);
    EXPECT_EQ(got.back(), -static_cast<int>(n - 1));
    EXPECT_EQ(std::count(got.begin(), got.end(), 10), static_cast<long>(n - 2));
    EXPECT_THROW(a.get(n), usage_error);
    EXPECT_THROW(a.read(n - 1, 2), usage_error);
    if (where == mpiproc::layout::blocks) { EXPECT_EQ(a.owner(n - 1), std::min(size() - 1, static_cast<int>((n - 1) / ((n + size() - 1) / size())))); }
    world().barrier();
  }
}

TEST(Array, WideElementsWrittenAndReadBackAcrossBlocks) {
  // Each rank writes elements of the next rank's block and reads each back at once, while the
  // others do the same: every read must return exactly what this rank wrote.
  struct wide {
    std::int64_t a, b, c, d;
  };
  const std::size_t per_rank = 8;
  mpiproc::array<wide> a(world(), per_rank * static_cast<std::size_t>(size()), mpiproc::layout::blocks);
  const std::size_t first = per_rank * static_cast<std::size_t>((rank() + 1) % size());
  int mismatches = 0;
  for (std::int64_t k = 0; k < 2000; ++k) {
    const std::size_t i = first + static_cast<std::size_t>(k) % per_rank;
    const wide w{rank(), k, -k, k * 3};
    a.set(i, w);
    const wide back = a.get(i);
    mismatches += back.a != w.a || back.b != w.b || back.c != w.c || back.d != w.d;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Progress, ServedWhileTheOwnerComputes) {
  // Rank 0 holds every object's memory; it computes for 3 s without calling MPI while the others
  // lock, count and wait on an event that one of them sets. They must not need rank 0 to act.
  // (With 4 ranks on 2 cores, the requests share the CPU with the busy owner: some margin.)
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::lock lock(world());
  mpiproc::counter tally(world());
  mpiproc::event done(world());
  mpiproc::semaphore sem(world(), 1);
  world().barrier();
  if (rank() == 0) {
    const auto start = std::chrono::steady_clock::now();
    while (seconds_since(start) < 3.0) {
    }
  } else {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) {
      std::lock_guard guard(lock);
      sem.acquire();
      tally.fetch_add(1);
      sem.release();
    }
    if (tally.load() == 20 * (size() - 1)) done.set();
    EXPECT_TRUE(done.wait_for(30s));
    EXPECT_LT(seconds_since(start), 2.5) << "waited for the busy owner";
  }
  world().barrier();
  EXPECT_EQ(tally.load(), 20 * (size() - 1));
}
