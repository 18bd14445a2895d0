// Channels and shared containers between ranks: pipes deliver in order, both ways, with an end
// of stream from either side and messages of 64 MiB; queues lose and duplicate nothing with many
// producers and consumers, keep each producer's order, respect their capacity, time out, and end
// on close; the Manager's dict and list give exact results under concurrent atomic updates; roles
// run the right work on the right ranks, and a failing role reaches the ranks waiting on it.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <boost/serialization/map.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <numeric>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using mpiproc::usage_error;
using test::seconds_since;
using test::world;

namespace {

int rank() { return world().rank(); }
int size() { return world().size(); }

/// Whether shared state goes by messages (a round trip per step: fewer items keep tests short).
bool by_messages() {
  const char* path = std::getenv("MPIPROC_TRANSPORT");
  return path && std::string(path) == "messages";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pipe

TEST(Pipe, JoinsTwoDifferentRanksOfTheCommunicator) {
  EXPECT_THROW(mpiproc::pipe<int>(world(), 0, 0), usage_error);
  EXPECT_THROW(mpiproc::pipe<int>(world(), 0, size()), usage_error);
  EXPECT_THROW(mpiproc::pipe<int>(world(), -1, 0), usage_error);
}

TEST(Pipe, DeliversInOrderThenTheEndOfStream) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int last = size() - 1;  // across hosts, rank 0 and the last rank sit on different hosts
  mpiproc::pipe<std::int64_t> p(world(), 0, last, mpiproc::pipe_mode::one_way);
  EXPECT_EQ(p.is_end(), rank() == 0 || rank() == last);
  if (rank() == 0) {
    EXPECT_TRUE(p.can_send());
    EXPECT_FALSE(p.can_recv());
    EXPECT_THROW(p.recv(), usage_error);
    for (std::int64_t i = 0; i < 5000; ++i) p.send(i * i);
    p.close();
    EXPECT_THROW(p.send(1), usage_error);  // after close
  } else if (rank() == last) {
    EXPECT_THROW(p.send(1), usage_error);  // the receiving end of a one-way pipe
    for (std::int64_t i = 0; i < 5000; ++i) {
      const auto got = p.recv();
      ASSERT_TRUE(got.has_value()) << "message " << i;
      ASSERT_EQ(*got, i * i);
    }
    EXPECT_TRUE(p.poll(10s));  // the end of stream comes, to be received
    EXPECT_FALSE(p.recv().has_value());
    EXPECT_FALSE(p.recv().has_value());  // and stays
  } else {
    EXPECT_THROW(p.send(1), usage_error);
  }
}

TEST(Pipe, DuplexCarriesStringsBothWays) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::pipe<std::string> p(world(), 0, 1);
  if (rank() == 0) {
    p.send("worker 1 here, hello!");
    EXPECT_EQ(p.recv().value_or("<end>"), "worker 2 here, bye!");
  } else if (rank() == 1) {
    EXPECT_EQ(p.recv().value_or("<end>"), "worker 1 here, hello!");
    p.send("worker 2 here, bye!");
  }
}

TEST(Pipe, EitherEndCanCloseFirst) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  for (int closer : {0, 1}) {
    mpiproc::pipe<int> p(world(), 0, 1);
    if (rank() > 1) continue;
    if (rank() == closer) {
      p.send(7);
      p.close();
      p.close();  // again: nothing
    } else {
      EXPECT_EQ(p.recv().value_or(-1), 7);
      EXPECT_FALSE(p.recv().has_value()) << "closed by rank " << closer;
      EXPECT_TRUE(p.poll(0s));
    }
  }
}

TEST(Pipe, PollWaitsForAMessageOrTimesOut) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::pipe<double> p(world(), 0, 1);
  if (rank() == 1) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(p.poll(100ms));
    EXPECT_GE(seconds_since(start), 0.1);
  }
  world().barrier();
  if (rank() == 0) p.send(2.5);
  if (rank() == 1) {
    EXPECT_TRUE(p.poll(10s));
    EXPECT_TRUE(p.poll(0s));  // polling takes nothing
    EXPECT_EQ(p.recv().value_or(0), 2.5);
    EXPECT_FALSE(p.poll(0s));
  }
  world().barrier();  // before rank 0's end closes (as it goes)
}

TEST(Pipe, CarriesMessagesOf64MiBAndSerializedTypes) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int last = size() - 1;
  mpiproc::pipe<std::vector<double>> big(world(), 0, last);
  mpiproc::pipe<std::map<int, std::string>> maps(world(), last, 0);
  const std::size_t n = (std::size_t{64} << 20) / sizeof(double);
  if (rank() == 0) {
    std::vector<double> data(n);
    std::iota(data.begin(), data.end(), 0.5);
    big.send(data);
    data.assign(3, -1.0);
    big.send(data);  // then a small one, reusing the receiver's buffer
    EXPECT_EQ(maps.recv().value_or(std::map<int, std::string>{}), (std::map<int, std::string>{{1, "1"}, {2, "two"}}));
  } else if (rank() == last) {
    std::vector<double> got;
    ASSERT_TRUE(big.recv(got));
    ASSERT_EQ(got.size(), n);
    EXPECT_EQ(got.front(), 0.5);
    EXPECT_EQ(got.back(), static_cast<double>(n - 1) + 0.5);
    EXPECT_EQ(std::accumulate(got.begin(), got.end(), 0.0), static_cast<double>(n) * static_cast<double>(n) / 2);
    ASSERT_TRUE(big.recv(got));
    EXPECT_EQ(got, std::vector<double>(3, -1.0));
    maps.send({{1, "1"}, {2, "two"}});
  }
}

// ---------------------------------------------------------------------------------------------
// Queue

namespace {
/// Item `i` of producer `p`.
std::int64_t item_of(int p, std::int64_t i) { return std::int64_t{p} * 1'000'000 + i; }
}  // namespace

TEST(Queue, ManyProducersAndConsumersLoseAndDuplicateNothing) {
  for (const bool bounded : {false, true}) {
    mpiproc::queue<std::int64_t> q(world(), {.capacity = bounded ? 16u : 0u});
    mpiproc::counter finished(world());
    const std::int64_t n = (by_messages() ? 600 : 3000) / size();
    std::vector<std::int64_t> taken;
    // Every rank puts its items and takes what it can in between; the last producer to finish closes.
    for (std::int64_t i = 0; i < n; ++i) {
      q.put(item_of(rank(), i));
      if (auto item = q.try_get()) taken.push_back(*item);
    }
    if (finished.fetch_add(1) + 1 == size()) q.close();
    while (auto item = q.get()) taken.push_back(*item);
    EXPECT_TRUE(q.ended());
    EXPECT_FALSE(q.get().has_value());

    // Each producer's items reached each consumer in the order they were put.
    std::map<std::int64_t, std::int64_t> last_seen;
    for (std::int64_t item : taken) {
      const std::int64_t producer = item / 1'000'000;
      if (last_seen.count(producer)) {
        EXPECT_LT(last_seen[producer], item);
      }
      last_seen[producer] = item;
    }
    // The multiset taken over all ranks is the multiset put, on every rank.
    std::vector<std::int64_t> all = test::all_gather(taken);
    std::sort(all.begin(), all.end());
    std::vector<std::int64_t> expected;
    for (int p = 0; p < size(); ++p)
      for (std::int64_t i = 0; i < n; ++i) expected.push_back(item_of(p, i));
    EXPECT_EQ(all, expected) << (bounded ? "bounded" : "unbounded");
  }
}

TEST(Queue, OneProducerFeedsTheOtherRanks) {
  mpiproc::queue<std::int64_t> q(world());
  std::vector<std::int64_t> taken;
  const std::int64_t n = by_messages() ? 2000 : 20000;
  if (rank() == 0) {
    for (std::int64_t i = 0; i < n; ++i) q.put(i);
    q.close();
  }
  if (rank() != 0 || size() == 1)
    while (auto item = q.get()) taken.push_back(*item);
  EXPECT_TRUE(std::is_sorted(taken.begin(), taken.end()));
  std::vector<std::int64_t> all = test::all_gather(taken);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(n);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
}

// Over several nodes a rank that gets alone is lent the next items; another rank's get must still
// take the oldest item, and size() and ended() must count the lent ones.
TEST(Queue, ALoneConsumerGetsTheOldestItemsAndSizeCountsWhatItHolds) {
  mpiproc::queue<int> q(world());
  const int n = 200, first = 30;
  const int lone = size() > 1 ? 1 : 0, other = size() > 2 ? 2 : 0;
  if (rank() == 0)
    for (int i = 0; i < n; ++i) q.put(i);
  world().barrier();
  if (rank() == lone) {
    for (int i = 0; i < first; ++i) EXPECT_EQ(q.get(), i);
  }
  world().barrier();
  EXPECT_EQ(q.size(), static_cast<std::uint64_t>(n - first));
  EXPECT_FALSE(q.empty());
  world().barrier();
  // Whatever the lone consumer holds lent comes back first: the oldest item is still the next.
  if (rank() == other) {
    EXPECT_EQ(q.get(), first);
  }
  world().barrier();
  if (rank() == lone) {
    EXPECT_EQ(q.get(), first + 1);
  }
  world().barrier();
  EXPECT_EQ(q.size(), static_cast<std::uint64_t>(n - first - 2));
  world().barrier();
  if (rank() == lone) {
    for (int i = first + 2; i < n; ++i) EXPECT_EQ(q.try_get(), i);
  }
  world().barrier();
  EXPECT_EQ(q.size(), 0u);
  world().barrier();
  // Consumers that get at once, so that leases go back and forth: after each round the queue holds
  // exactly what nobody took, and each rank took its items in order.
  const int rounds = 5, each = 40;
  for (int round = 0; round < rounds; ++round) {
    if (rank() == 0)
      for (int i = 0; i < each * size() + 10; ++i) q.put(round * 1000 + i);
    world().barrier();
    int last = -1;
    for (int i = 0; i < each; ++i) {
      const std::optional<int> item = q.get();
      ASSERT_TRUE(item.has_value());
      EXPECT_GT(*item, last);
      last = *item;
    }
    world().barrier();
    EXPECT_EQ(q.size(), 10u);
    world().barrier();
    if (rank() == 0) {
      for (int i = 0; i < 10; ++i) EXPECT_TRUE(q.try_get().has_value());
    }
    world().barrier();
  }
  if (rank() == 0) q.close();
  world().barrier();
  EXPECT_TRUE(q.ended());
  EXPECT_FALSE(q.get().has_value());
  // A rank that leaves holding lent items hands them back on the way out.
  mpiproc::queue<int> left(world());
  if (rank() == 0) {
    for (int i = 0; i < n; ++i) left.put(i);
  }
  world().barrier();
  if (rank() == lone) {
    for (int i = 0; i < first; ++i) EXPECT_EQ(left.get(), i);
  }
  world().barrier();
}

TEST(Queue, SerializedItemsOfAnySizeSpanSlots) {
  mpiproc::queue<std::string> q(world(), {.slots = 64, .slot_bytes = 40});
  mpiproc::counter finished(world());
  std::vector<std::int64_t> lengths;
  const auto keep = [&](const std::string& item) {
    const auto length = static_cast<std::int64_t>(item.size());
    EXPECT_EQ(item, std::string(item.size(), static_cast<char>('a' + length % 26)));
    lengths.push_back(length);
  };
  // Lengths 0..599 over all ranks: empty, one slot, many slots (up to 15 of the 64).
  for (int i = rank(); i < 600; i += size()) {
    q.put(std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
    if (auto item = q.try_get()) keep(*item);
  }
  if (finished.fetch_add(1) + 1 == size()) q.close();
  while (auto item = q.get()) keep(*item);
  std::vector<std::int64_t> all = test::all_gather(lengths);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(600);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
  mpiproc::queue<std::vector<int>> small(world(), {.slots = 4, .slot_bytes = 16});
  // Larger than the whole ring on one node: a usage_error there, never a hang; a queue over
  // several nodes keeps items in a list, and takes it.
  try {
    if (rank() == 0) small.put(std::vector<int>(100, 3));
    world().barrier();
    if (rank() == 0) {
      EXPECT_EQ(small.get_for(10s), std::vector<int>(100, 3));
    }
  } catch (const usage_error&) {
    EXPECT_FALSE(by_messages());
    world().barrier();
  }
}

TEST(Queue, PutWaitsWhileTheQueueIsFull) {
  mpiproc::queue<int> q(world(), {.capacity = 4});
  if (size() == 1) {
    for (int i = 0; i < 4; ++i) q.put(i);
    EXPECT_EQ(q.size(), 4u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(q.get().value_or(-1), i);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  if (rank() == 0) {
    for (int i = 0; i < 4; ++i) q.put(i);
    EXPECT_LT(seconds_since(start), 0.2);
    q.put(4);  // waits until rank 1 takes one, 300 ms on
    EXPECT_GE(seconds_since(start), 0.25);
    for (int i = 5; i < 100; ++i) {
      q.put(i);
      EXPECT_LE(q.size(), 4u);
    }
    q.close();
  } else if (rank() == 1) {
    std::this_thread::sleep_for(300ms);
    int expected = 0;
    while (auto item = q.get()) {
      EXPECT_EQ(*item, expected++);
      EXPECT_LE(q.size(), 4u);
    }
    EXPECT_EQ(expected, 100);
  }
  world().barrier();
}

TEST(Queue, GetForTimesOutOnAnOpenQueueAndEndsOnAClosedOne) {
  mpiproc::queue<int> q(world());
  EXPECT_FALSE(q.try_get().has_value());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.get_for(100ms).has_value());
  EXPECT_GE(seconds_since(start), 0.1);
  EXPECT_FALSE(q.ended());
  EXPECT_FALSE(q.closed());
  world().barrier();
  if (rank() == 0) {
    q.put(42);
    q.close();
  }
  world().barrier();
  EXPECT_TRUE(q.closed());
  EXPECT_THROW(q.put(1), usage_error);
  // A put on a full queue, waiting or about to, is refused once the queue closes, never left waiting.
  mpiproc::queue<int> full(world(), {.capacity = 1});
  if (rank() == 0) {
    full.put(1);
    full.close();
    EXPECT_THROW(full.put(2), usage_error);
  }
  EXPECT_THROW(mpiproc::queue<std::string>(world(), {.slot_bytes = 0}), usage_error);
  mpiproc::counter got(world());
  while (auto item = q.get_for(10s)) {
    EXPECT_EQ(*item, 42);
    got.fetch_add(1);
  }
  EXPECT_TRUE(q.ended());
  world().barrier();
  EXPECT_EQ(got.load(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Shared dict and list (the Manager's)

TEST(SharedDict, AtomicUpdatesFromEveryRankAddUpExactly) {
  mpiproc::shared_dict<std::string, std::int64_t> d(world());
  const int n = by_messages() ? 50 : 200;
  for (int i = 0; i < n; ++i) {
    d.update("total", [](std::optional<std::int64_t> v) { return v.value_or(0) + 1; });
    d.update("rank " + std::to_string(rank()), [](std::optional<std::int64_t> v) { return v.value_or(0) + 2; });
  }
  world().barrier();
  EXPECT_EQ(d.at("total"), std::int64_t{n} * size());
  for (int r = 0; r < size(); ++r) EXPECT_EQ(d.at("rank " + std::to_string(r)), 2 * n);
  EXPECT_EQ(d.size(), static_cast<std::uint64_t>(size() + 1));
  world().barrier();
}

TEST(SharedDict, SetGetEraseSnapshotAndMissingKeys) {
  mpiproc::shared_dict<std::int64_t, std::vector<int>> d(world());
  for (int i = 0; i < 50; ++i) d.set(std::int64_t{rank()} * 1000 + i, std::vector<int>(static_cast<std::size_t>(i), rank()));
  world().barrier();
  std::map<std::int64_t, std::vector<int>> expected;
  for (int r = 0; r < size(); ++r)
    for (int i = 0; i < 50; ++i) expected[std::int64_t{r} * 1000 + i] = std::vector<int>(static_cast<std::size_t>(i), r);
  EXPECT_EQ(d.snapshot(), expected);  // on every rank, whoever owns each key
  EXPECT_EQ(d.size(), expected.size());
  EXPECT_EQ(d.at(std::int64_t{size() - 1} * 1000 + 7), std::vector<int>(7, size() - 1));
  EXPECT_THROW(d.at(-5), mpiproc::key_error);
  EXPECT_FALSE(d.get(-5).has_value());
  EXPECT_FALSE(d.contains(-5));
  world().barrier();
  EXPECT_TRUE(d.erase(std::int64_t{rank()} * 1000));
  EXPECT_FALSE(d.erase(std::int64_t{rank()} * 1000));
  world().barrier();
  EXPECT_EQ(d.size(), expected.size() - static_cast<std::size_t>(size()));
  world().barrier();
  if (rank() == 0) d.clear();
  world().barrier();
  EXPECT_EQ(d.size(), 0u);
  EXPECT_TRUE(d.snapshot().empty());
  world().barrier();
}

TEST(SharedList, AppendsFromEveryRankKeepEachRanksOrder) {
  mpiproc::shared_list<std::int64_t> l(world());
  for (int i = 0; i < 100; ++i) l.append(std::int64_t{rank()} * 1000 + i);
  world().barrier();
  const std::vector<std::int64_t> all = l.snapshot();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(100 * size()));
  std::map<std::int64_t, std::int64_t> last_seen;
  for (std::int64_t item : all) {
    if (last_seen.count(item / 1000)) {
      EXPECT_LT(last_seen[item / 1000], item);
    }
    last_seen[item / 1000] = item;
  }
  std::vector<std::int64_t> sorted = all, expected;
  std::sort(sorted.begin(), sorted.end());
  for (int r = 0; r < size(); ++r)
    for (int i = 0; i < 100; ++i) expected.push_back(std::int64_t{r} * 1000 + i);
  EXPECT_EQ(sorted, expected);
  world().barrier();
}

TEST(SharedList, AtomicItemUpdatesAndPythonIndexing) {
  std::vector<int> initial(10);
  std::iota(initial.begin(), initial.end(), 0);
  mpiproc::shared_list<int> l(world(), initial);
  EXPECT_EQ(l.size(), 10u);
  for (int i = 0; i < 100; ++i) l.update(0, [](int v) { return v + 1; });
  world().barrier();
  EXPECT_EQ(l.at(0), 100 * size());
  EXPECT_EQ(l[-1], 9);
  EXPECT_THROW(l.at(10), mpiproc::index_error);
  EXPECT_THROW(l.at(-11), mpiproc::index_error);
  world().barrier();
  if (rank() == size() - 1) {
    l.set(0, 0);
    l.reverse();  // the seed: another process reverses the list
  }
  world().barrier();
  EXPECT_EQ(l.snapshot(), (std::vector<int>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  world().barrier();
  if (rank() == 0) {
    EXPECT_EQ(l.pop(), 0);
    EXPECT_EQ(l.pop(0), 9);
    l.insert(-100, 42);  // clamped, as in Python
    l.extend({7, 7});
    EXPECT_EQ(l.snapshot(), (std::vector<int>{42, 8, 7, 6, 5, 4, 3, 2, 1, 7, 7}));
    l.clear();
    EXPECT_THROW(l.pop(), mpiproc::index_error);
  }
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// Roles (Process-style)

TEST(Roles, EachRankRunsItsRolesWorkOnItsGroup) {
  std::vector<int> ran(2, 0);
  int group_size = -1, group_rank = -1;
  const auto record = [&](int which) {
    return [&, which](const mpiproc::communicator& group) {
      ++ran[static_cast<std::size_t>(which)];
      group_size = group.size();
      group_rank = group.rank();
      group.barrier();  // the group's own communicator works
    };
  };
  const std::size_t mine =
      mpiproc::run_roles(world(), {{"first", 1, record(0)}, {"rest", mpiproc::remaining_ranks, record(1)}});
  EXPECT_EQ(mine, rank() == 0 ? 0u : 1u);
  EXPECT_EQ(ran, (rank() == 0 ? std::vector<int>{1, 0} : std::vector<int>{0, 1}));
  EXPECT_EQ(group_size, rank() == 0 ? 1 : size() - 1);
  EXPECT_EQ(group_rank, rank() == 0 ? 0 : rank() - 1);
  EXPECT_THROW(mpiproc::run_roles(world(), {{"too many", size() + 1, {}}}), usage_error);
  EXPECT_THROW(mpiproc::run_roles(world(), {{"a", mpiproc::remaining_ranks, {}}, {"b", mpiproc::remaining_ranks, {}}}),
               usage_error);
}

TEST(Roles, ACountBelowOneIsAUsageErrorOnEveryRank) {
  // -1 was once the remaining ranks' number; now it is a bad count like any other.
  for (const int bad : {0, -1, -5}) {
    bool threw = false;
    try {
      mpiproc::run_roles(world(), {{"first", 1, {}}, {"bad", bad, {}}});
    } catch (const usage_error& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("'bad' asks for " + std::to_string(bad) + " ranks"), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(threw) << "count " << bad;
  }
  static_assert(!std::is_convertible_v<mpiproc::remaining_ranks_t, int>, "remaining_ranks is not a number");
  static_assert(mpiproc::rank_count(mpiproc::remaining_ranks).remaining());
  static_assert(!mpiproc::rank_count(3).remaining() && mpiproc::rank_count(3).ranks() == 3);
  world().barrier();  // every rank came through, none left waiting in run_roles
}

TEST(Roles, ReturningRolesGiveEveryRankEachRolesValue) {
  // Process targets whose return values come back (multiprocessing drops them): each role's
  // value is its group's rank 0's, on every rank, in the order of the roles.
  const auto named = [](const char* name) {
    return [name](const mpiproc::communicator& group) { return std::string(name) + " on " + std::to_string(group.size()); };
  };
  const std::vector<mpiproc::returning_role<std::string>> two{{"first", 1, named("first")},
                                                              {"rest", mpiproc::remaining_ranks, named("rest")}};
  if (size() >= 2)
    EXPECT_EQ(mpiproc::run_roles(world(), two), (std::vector<std::string>{"first on 1", "rest on " + std::to_string(size() - 1)}));
  else
    EXPECT_THROW(mpiproc::run_roles(world(), two), usage_error);  // "rest" would have no rank to return its value

  std::vector<mpiproc::returning_role<std::int64_t>> each;
  std::vector<std::int64_t> expected;
  for (int r = 0; r < size(); ++r) {
    each.push_back({"rank " + std::to_string(r), 1, [](const mpiproc::communicator&) { return std::int64_t{rank()} * 100 + 7; }});
    expected.push_back(std::int64_t{r} * 100 + 7);
  }
  EXPECT_EQ(mpiproc::run_roles(world(), each), expected);
  // One role on every rank: its group's rank 0 is world rank 0.
  EXPECT_EQ(mpiproc::run_roles<int>(world(), {{"all", mpiproc::remaining_ranks, [](const mpiproc::communicator&) { return rank() + 1; }}}),
            std::vector<int>{1});
  EXPECT_EQ(mpiproc::run_roles<bool>(world(), {{"yes", 1, [](const mpiproc::communicator&) { return true; }}}),
            std::vector<bool>{true});

  try {
    mpiproc::run_roles<int>(world(), {{"all", mpiproc::remaining_ranks, [](const mpiproc::communicator& group) -> int {
                                         if (group.rank() == group.size() - 1) throw std::runtime_error("no value");
                                         return 1;
                                       }}});
    ADD_FAILURE() << "no error";
  } catch (const mpiproc::remote_error& e) {
    EXPECT_EQ(e.rank(), size() - 1);
    EXPECT_EQ(e.message(), "no value");
  }
  EXPECT_THROW(mpiproc::run_roles<int>(world(), {{"no work", 1, {}}}), usage_error);
  world().barrier();  // every rank came through
}

TEST(Roles, AFailingRoleReachesRanksWaitingOnItsQueueOrPipe) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::queue<int> q(world());
  mpiproc::pipe<int> p(world(), 0, 1);
  const auto producer = [&](const mpiproc::communicator&) {
    q.put(1);
    p.send(1);
    throw std::runtime_error("producer broke down");
  };
  const auto consumer = [&](const mpiproc::communicator&) {
    if (rank() == 1)
      while (p.recv()) {
      }  // waits for a message that never comes
    while (q.get()) {
    }  // the queue is never closed
  };
  try {
    mpiproc::run_roles(world(), {{"producer", 1, producer}, {"consumers", mpiproc::remaining_ranks, consumer}});
    ADD_FAILURE() << "no error";
  } catch (const mpiproc::remote_error& e) {
    EXPECT_EQ(e.rank(), 0);
    EXPECT_EQ(e.message(), "producer broke down");
  }
}

// ---------------------------------------------------------------------------------------------
// Progress

TEST(Progress, ChannelsWorkWhileRankZeroComputes) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  // Rank 0 holds the queue, the list and some of the dict's keys, and computes for 3 s without an
  // MPI call while the others use them: they finish well before (a margin for 2 shared cores).
  mpiproc::queue<std::int64_t> q(world());
  mpiproc::shared_dict<std::int64_t, std::int64_t> d(world());
  mpiproc::shared_list<std::int64_t> l(world());
  world().barrier();
  if (rank() == 0) {
    const auto start = std::chrono::steady_clock::now();
    volatile std::uint64_t spin = 0;
    while (seconds_since(start) < 3.0) spin = spin + 1;
  } else {
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < 50; ++i) {
      q.put(i);
      EXPECT_TRUE(q.get().has_value());
      d.update(i % 8, [](std::optional<std::int64_t> v) { return v.value_or(0) + 1; });
      l.append(i);
    }
    EXPECT_LT(seconds_since(start), 2.5) << "waited for rank 0";
  }
  world().barrier();
  std::int64_t total = 0;
  for (const auto& [key, value] : d.snapshot()) total += value;
  EXPECT_EQ(total, 50 * (size() - 1));
  EXPECT_EQ(l.size(), static_cast<std::uint64_t>(50 * (size() - 1)));
  EXPECT_TRUE(q.empty());
}
