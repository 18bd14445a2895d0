// The task pool (task_pool.hpp, future.hpp): tasks submitted from every rank run exactly once and
// every result reaches its future, trees of tasks that submit tasks included; a task that throws
// fails its own future only; cancel, time limits and timeouts; close drains what is in flight.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using test::sum_over_ranks;
using test::world;

namespace {

/// The number of nodes of the tree `tree_task` grows from (seed, depth), computed here alone.
std::int64_t tree_size(std::uint64_t seed, int depth) {
  if (depth == 0) return 1;
  std::mt19937_64 gen(seed);
  const int children = static_cast<int>(gen() % 4);
  std::int64_t n = 1;
  for (int c = 0; c < children; ++c) n += tree_size(gen(), depth - 1);
  return n;
}

}  // namespace

TEST(TaskPool, EveryTaskRunsOnceAndEveryResultReachesItsFuture) {
  std::int64_t runs = 0;
  mpiproc::task_pool pool(world());
  const auto f = pool.define([&runs](std::int64_t x, int from) {
    ++runs;
    return x * x + from;
  });
  const int n = 2000;
  std::vector<mpiproc::future<std::int64_t>> futures;
  for (int x = 0; x < n; ++x) futures.push_back(pool.submit(f, x, world().rank()));
  for (int x = 0; x < n; ++x) EXPECT_EQ(futures[static_cast<std::size_t>(x)].get(), std::int64_t{x} * x + world().rank());
  pool.close();
  EXPECT_EQ(sum_over_ranks(runs), std::int64_t{n} * world().size());
}

TEST(TaskPool, RandomTreesOfTasksSubmittingTasks) {
  std::int64_t runs = 0;
  mpiproc::task_pool pool(world());
  mpiproc::task<std::int64_t(std::uint64_t, int)> grow;
  grow = pool.define([&runs, &grow](mpiproc::task_pool& p, std::uint64_t seed, int depth) -> std::int64_t {
    ++runs;
    if (depth == 0) return 1;
    std::mt19937_64 gen(seed);
    const int children = static_cast<int>(gen() % 4);
    std::vector<mpiproc::future<std::int64_t>> kids;
    for (int c = 0; c < children; ++c) kids.push_back(p.submit(grow, gen(), depth - 1));
    std::int64_t n = 1;
    for (const std::size_t k : mpiproc::as_completed(kids)) n += kids[k].get();
    return n;
  });
  std::int64_t expected_runs = 0;
  for (int tree = 0; tree < 3; ++tree) {
    const std::uint64_t seed = 1000 * static_cast<std::uint64_t>(world().rank()) + static_cast<std::uint64_t>(tree);
    const std::int64_t expected = tree_size(seed, 6);
    EXPECT_EQ(pool.submit(grow, seed, 6).get(), expected) << "tree " << tree;
    expected_runs += expected;
  }
  pool.close();
  EXPECT_EQ(sum_over_ranks(runs), sum_over_ranks(expected_runs));
}

TEST(TaskPool, ATaskThatThrowsFailsItsOwnFutureOnly) {
  mpiproc::task_pool pool(world());
  const auto f = pool.define([](int x) {
    if (x == 13) throw std::runtime_error("unlucky " + std::to_string(x));
    return std::string(static_cast<std::size_t>(x), 'a');
  });
  std::vector<mpiproc::future<std::string>> futures;
  for (int x = 0; x < 40; ++x) futures.push_back(pool.submit(f, x));
  for (int x = 0; x < 40; ++x) {
    if (x == 13) {
      try {
        futures[13].get();
        ADD_FAILURE() << "no error";
      } catch (const mpiproc::remote_error& e) {
        EXPECT_GE(e.rank(), 0);
        EXPECT_LT(e.rank(), world().size());
        EXPECT_EQ(e.message(), "unlucky 13");
      }
      EXPECT_THROW(futures[13].get(), mpiproc::remote_error);  // again: the same outcome
    } else {
      EXPECT_EQ(futures[static_cast<std::size_t>(x)].get(), std::string(static_cast<std::size_t>(x), 'a'));
    }
  }
  pool.close();
}

TEST(TaskPool, CancelATaskNotStarted) {
  std::atomic<int> runs{0};
  mpiproc::task_pool pool(world());
  const auto f = pool.define([&runs](int x) {
    ++runs;
    return x;
  });
  auto first = pool.submit(f, 1);
  auto second = pool.submit(f, 2);
  const bool cancelled = second.cancel();
  if (world().size() == 1) {
    EXPECT_TRUE(cancelled);  // nobody else could have taken it
  }
  if (cancelled) {
    EXPECT_TRUE(second.cancelled());
    EXPECT_TRUE(second.ready());
    EXPECT_THROW(second.get(), mpiproc::cancelled_error);
    EXPECT_TRUE(second.cancel());  // cancelled already
  } else {
    EXPECT_EQ(second.get(), 2);
  }
  EXPECT_EQ(first.get(), 1);
  EXPECT_FALSE(first.cancel());  // done
  EXPECT_FALSE(first.cancelled());
  pool.close();
  EXPECT_EQ(sum_over_ranks(runs.load()), sum_over_ranks(cancelled ? 1 : 2));
}

TEST(TaskPool, ATimeLimitFailsTheTasksFuture) {
  mpiproc::task_pool pool(world());
  std::atomic<int> started{0};
  const auto slow = pool.define([&started](double seconds) {
    ++started;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    return seconds;
  });
  // Runs past its limit: its future fails, though the task ran to its end.
  auto late = pool.submit(mpiproc::task_options{.time_limit = 0.1}, slow, 0.4);
  EXPECT_THROW(late.get(), mpiproc::timeout_error);
  EXPECT_TRUE(late.ready());
  // Within its limit: the result.
  EXPECT_EQ(pool.submit(mpiproc::task_options{.time_limit = 30}, slow, 0.01).get(), 0.01);
  EXPECT_THROW(pool.submit(mpiproc::task_options{.time_limit = -1}, slow, 0.01), mpiproc::usage_error);
  pool.close();
}

TEST(TaskPool, GetWithATimeoutGivesUpWhileTheTaskRunsElsewhere) {
  if (world().size() < 2) GTEST_SKIP() << "needs a second rank to run the task";
  mpiproc::task_pool pool(world());
  const auto slow = pool.define([](int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return x;
  });
  if (world().rank() == 0) {
    auto f = pool.submit(mpiproc::task_options{.rank = 1}, slow, 7);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // rank 1, in close(), runs it by then
    EXPECT_THROW(f.get(0.05), mpiproc::timeout_error);
    EXPECT_FALSE(f.wait(0.01));
    EXPECT_FALSE(f.ready());
    EXPECT_EQ(f.get(), 7);
  }
  pool.close();
}

TEST(TaskPool, CloseDrainsTasksInFlight) {
  mpiproc::task_pool pool(world());
  const auto f = pool.define([](std::int64_t x) { return x + 1; });
  std::vector<mpiproc::future<std::int64_t>> futures;
  for (std::int64_t x = 0; x < 500; ++x) futures.push_back(pool.submit(mpiproc::task_options{.rank = static_cast<int>(x % world().size())}, f, x));
  pool.close();  // no get: close runs them
  for (std::int64_t x = 0; x < 500; ++x) {
    ASSERT_TRUE(futures[static_cast<std::size_t>(x)].ready());
    EXPECT_EQ(futures[static_cast<std::size_t>(x)].get(), x + 1);
  }
  EXPECT_THROW(pool.submit(f, 1), mpiproc::usage_error);
  pool.close();  // again: nothing
}

TEST(TaskPool, WaitAnyAndAsCompletedGiveEachFutureOnce) {
  mpiproc::task_pool pool(world());
  const auto nap = pool.define([](int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  });
  std::vector<mpiproc::future<int>> futures;
  for (int k = 0; k < 12; ++k) futures.push_back(pool.submit(nap, (k * 7) % 5));
  const std::size_t any = mpiproc::wait_any(futures);
  ASSERT_LT(any, futures.size());
  EXPECT_TRUE(futures[any].ready());
  std::vector<int> seen(futures.size());
  for (const std::size_t k : mpiproc::as_completed(futures)) {
    ASSERT_LT(k, futures.size());
    ++seen[k];
    EXPECT_TRUE(futures[k].ready());
    EXPECT_EQ(futures[k].get(), static_cast<int>(k * 7) % 5);
  }
  EXPECT_EQ(seen, std::vector<int>(futures.size(), 1));
  EXPECT_THROW(mpiproc::wait_any(std::vector<mpiproc::future<int>>{}), mpiproc::usage_error);
  EXPECT_THROW(mpiproc::future<int>().get(), mpiproc::usage_error);
  pool.close();
}

TEST(TaskPool, TasksOfManyTypes) {
  mpiproc::task_pool pool(world());
  const auto join = pool.define([](std::vector<std::string> words, char sep) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : std::string(1, sep)) + w;
    return out;
  });
  int called = 0;
  const auto nothing = pool.define([&called]() { ++called; });
  EXPECT_EQ(pool.submit(join, std::vector<std::string>{"a", "bb", "ccc"}, '-').get(), "a-bb-ccc");
  auto done = pool.submit(nothing);
  done.get();
  EXPECT_TRUE(done.ready());
  pool.close();
  EXPECT_EQ(sum_over_ranks(called), world().size());
}

// A rank busy in its own code does not hold its tasks back: the others take them from its queue
// (its service thread answers) and their results are there when it comes back.
TEST(TaskPool, ABusyRanksTasksRunOnTheOtherRanks) {
  if (world().size() < 2) GTEST_SKIP() << "needs a second rank to run the tasks";
  mpiproc::task_pool pool(world());
  const auto where = pool.define([](int) { return world().rank(); });
  if (world().rank() == 0) {
    std::vector<mpiproc::future<int>> futures;
    for (int k = 0; k < 200; ++k) futures.push_back(pool.submit(where, k));
    std::this_thread::sleep_for(std::chrono::seconds(1));  // busy: no pool call
    int ready = 0;
    for (const auto& f : futures) ready += f.ready() ? 1 : 0;
    EXPECT_EQ(ready, 200);
    for (const auto& f : futures) EXPECT_NE(f.get(), 0);
  }
  pool.close();
}

// A rank inside a long task of its own does not hold its queue back either: its service thread
// answers the others' steals while the task runs.
TEST(TaskPool, ARankInALongTaskStillLendsItsQueue) {
  if (world().size() < 2) GTEST_SKIP() << "needs a second rank to take the tasks";
  mpiproc::task_pool pool(world());
  const auto where = pool.define([](int) { return world().rank(); });
  const auto nap = pool.define([](int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return world().rank();
  });
  if (world().rank() == 0) {
    std::vector<mpiproc::future<int>> futures;
    for (int k = 0; k < 100; ++k) futures.push_back(pool.submit(where, k));
    // Placed here and the newest: rank 0 runs it first, for a second.
    EXPECT_EQ(pool.submit(mpiproc::task_options{.rank = 0}, nap, 1000).get(), 0);
    int elsewhere = 0;
    for (const auto& f : futures) elsewhere += f.get() != 0 ? 1 : 0;
    EXPECT_EQ(elsewhere, 100);
  }
  pool.close();
}

// task_options::rank: the task runs on that rank (while it waits, here in close()), whoever waits
// for it meanwhile.
TEST(TaskPool, APlacedTaskRunsOnItsRank) {
  mpiproc::task_pool pool(world());
  const auto where = pool.define([](int) { return world().rank(); });
  std::vector<mpiproc::future<int>> futures;
  for (int k = 0; k < 50; ++k)
    for (int r = 0; r < world().size(); ++r) futures.push_back(pool.submit(mpiproc::task_options{.rank = r}, where, k));
  for (std::size_t k = 0; k < futures.size(); ++k)
    EXPECT_EQ(futures[k].get(), static_cast<int>(k % static_cast<std::size_t>(world().size())));
  EXPECT_THROW(pool.submit(mpiproc::task_options{.rank = world().size()}, where, 0), mpiproc::usage_error);
  EXPECT_THROW(pool.submit(mpiproc::task_options{.rank = -2}, where, 0), mpiproc::usage_error);
  pool.close();
}

// Messages past the posted receives' size (64 KiB) come in two: long arguments and results, placed
// and not, and steals of many tasks with arguments of some size.
TEST(TaskPool, LongArgumentsResultsAndSteals) {
  mpiproc::task_pool pool(world());
  const auto reverse = pool.define([](std::string text) { return std::string(text.rbegin(), text.rend()); });
  const auto length = pool.define([](const std::vector<std::int64_t>& v) { return static_cast<std::int64_t>(v.size()); });
  std::string text(300 * 1024, 'a');
  for (std::size_t k = 0; k < text.size(); ++k) text[k] = static_cast<char>('a' + (k * 7 + static_cast<std::size_t>(world().rank())) % 26);
  const std::string reversed(text.rbegin(), text.rend());
  std::vector<mpiproc::future<std::string>> long_ones;
  for (int r = 0; r < world().size(); ++r) long_ones.push_back(pool.submit(mpiproc::task_options{.rank = r}, reverse, text));
  long_ones.push_back(pool.submit(reverse, text));
  std::vector<mpiproc::future<std::int64_t>> many;
  for (int k = 0; k < 3000; ++k) many.push_back(pool.submit(length, std::vector<std::int64_t>(static_cast<std::size_t>(40 + k % 7), k)));
  for (const auto& f : long_ones) EXPECT_EQ(f.get(), reversed);
  for (int k = 0; k < 3000; ++k) EXPECT_EQ(many[static_cast<std::size_t>(k)].get(), 40 + k % 7);
  pool.close();
}

// future::ready() takes the outcomes that came while this rank computed.
TEST(TaskPool, ReadySeesResultsThatCameWhileTheRankComputed) {
  if (world().size() < 2) GTEST_SKIP() << "needs a second rank to run the task";
  mpiproc::task_pool pool(world());
  const auto twice = pool.define([](int x) { return 2 * x; });
  if (world().rank() == 0) {
    auto f = pool.submit(mpiproc::task_options{.rank = 1}, twice, 21);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!f.ready() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(f.ready());
    EXPECT_EQ(f.get(), 42);
  }
  pool.close();
}

TEST(Process, StartJoinIsAliveExitcodeAndResult) {
  mpiproc::task_pool pool(world());
  const auto nap = pool.define([](int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    if (ms < 0) throw std::runtime_error("negative nap");
    return ms * 2;
  });
  mpiproc::process p(pool, nap, 20), bad(pool, nap, -1);
  EXPECT_FALSE(p.is_alive());
  EXPECT_FALSE(p.exitcode().has_value());
  EXPECT_THROW(p.join(), mpiproc::usage_error);  // not started
  p.start();
  EXPECT_THROW(p.start(), mpiproc::usage_error);  // twice
  bad.start();
  p.join();
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(p.result(), 40);
  EXPECT_TRUE(bad.join(30));
  EXPECT_EQ(bad.exitcode(), 1);
  EXPECT_THROW(bad.result(), mpiproc::remote_error);
  pool.close();
}

// A rank whose code throws while it holds a pool leaves without close(): the others' waits end
// with an error naming it instead of waiting for it forever.
TEST(TaskPool, ARankThatLeavesOnAnExceptionEndsTheOthersWaits) {
  if (world().size() < 2) GTEST_SKIP() << "needs a rank to stay";
  const int last = world().size() - 1;
  if (world().rank() == last) {
    try {
      mpiproc::task_pool pool(world());
      pool.define([](int x) { return x; });
      throw std::runtime_error("this rank's own code failed");
    } catch (const std::runtime_error&) {
    }
  } else {
    mpiproc::task_pool pool(world());
    const auto same = pool.define([](int x) { return x; });
    EXPECT_EQ(pool.submit(same, 5).get(), 5);
    try {
      pool.close();
      ADD_FAILURE() << "close() returned without the last rank";
    } catch (const mpiproc::error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(last)), std::string::npos) << e.what();
    }
  }
  world().barrier();
}
