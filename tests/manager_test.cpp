// The Manager's list and dict with Python's semantics, after CPython's multiprocessing Manager
// tests: remove/index/count/sort and slices give exactly Python's results (hardcoded from CPython
// 3.11), bad arguments raise Python's error kinds, every operation is atomic under concurrent use
// from every rank (one setdefault wins, each key is popped once, inserted blocks stay whole, no
// item is lost to a concurrent sort), and iteration walks a snapshot.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using mpiproc::index_error;
using mpiproc::key_error;
using mpiproc::value_error;
using test::world;

namespace {

constexpr std::int64_t max64 = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t min64 = std::numeric_limits<std::int64_t>::min();
constexpr auto none = std::nullopt;

int rank() { return world().rank(); }
int size() { return world().size(); }

std::vector<int> range(int n) {
  std::vector<int> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = i;
  return out;
}

/// Runs `change` on one rank (turns go round the ranks), between barriers, so that every rank
/// then checks the same list.
void on_one_rank(int turn, const std::function<void()>& change) {
  world().barrier();
  if (rank() == turn % size()) change();
  world().barrier();
}

/// Whether every rank shares this node's memory and the shared-memory transport is not turned off:
/// then a dict is one table with one insertion order.
bool on_one_node() {
  const char* transport = std::getenv("MPIPROC_TRANSPORT");
  if (transport && std::string(transport) == "messages") return false;
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int here = 0;
  MPI_Comm_size(node, &here);
  MPI_Comm_free(&node);
  int everywhere = 0;
  MPI_Allreduce(&here, &everywhere, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return everywhere == size();
}

/// The sum over ranks.
std::int64_t sum(std::int64_t mine) {
  std::int64_t total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// list: remove, index, count, contains

TEST(ManagerList, IndexCountAndContainsAsPython) {
  mpiproc::shared_list<int> l(world(), {1, 2, 3, 2, 1});
  EXPECT_EQ(l.count(2), 2u);
  EXPECT_EQ(l.count(7), 0u);
  EXPECT_EQ(l.index(2), 1u);
  EXPECT_EQ(l.index(2, 2), 3u);
  EXPECT_EQ(l.index(1, -1), 4u);
  EXPECT_EQ(l.index(2, -3, -1), 3u);
  EXPECT_EQ(l.index(1, min64, max64), 0u);  // clamped, never index_error
  EXPECT_THROW(l.index(9), value_error);
  EXPECT_THROW(l.index(3, 3), value_error);
  EXPECT_THROW(l.index(1, 100), value_error);
  EXPECT_THROW(l.index(1, 1, 1), value_error);
  EXPECT_THROW(l.index(3, 0, -3), value_error);  // [1, 2]
  EXPECT_TRUE(l.contains(3));
  EXPECT_FALSE(l.contains(4));
  world().barrier();
}

TEST(ManagerList, RemoveTakesTheFirstEqualItemOrRaisesValueError) {
  mpiproc::shared_list<int> l(world(), {1, 2, 3, 2, 1});
  on_one_rank(0, [&] { l.remove(2); });
  EXPECT_EQ(l.snapshot(), (std::vector<int>{1, 3, 2, 1}));
  on_one_rank(1, [&] {
    EXPECT_THROW(l.remove(7), value_error);
    l.remove(1);
  });
  EXPECT_EQ(l.snapshot(), (std::vector<int>{3, 2, 1}));
  world().barrier();
  mpiproc::shared_list<std::string> empty(world());
  EXPECT_THROW(empty.remove("x"), value_error);
  EXPECT_THROW(empty.index("x"), value_error);
  EXPECT_THROW(empty.pop(), index_error);
  EXPECT_EQ(empty.count("x"), 0u);
  world().barrier();
}

TEST(ManagerList, ItemsCompareAsTheirTypeNotTheirBytes) {
  mpiproc::shared_list<double> l(world(), {1.5, 0.0});
  EXPECT_EQ(l.index(-0.0), 1u);  // 0.0 == -0.0, though their bytes differ
  EXPECT_EQ(l.count(-0.0), 1u);
  world().barrier();
  mpiproc::shared_list<std::vector<int>> nested(world(), {{1, 2}, {}, {1, 2}});
  EXPECT_EQ(nested.count({1, 2}), 2u);
  EXPECT_EQ(nested.index({}), 1u);
  world().barrier();
}

TEST(ManagerList, ConcurrentRemovesOfOneItemSucceedOnceEach) {
  const int copies = 20;
  mpiproc::shared_list<int> l(world(), std::vector<int>(static_cast<std::size_t>(copies * size()), 5));
  std::int64_t removed = 0, failed = 0;
  for (int i = 0; i < copies + 5; ++i) {
    try {
      l.remove(5);
      ++removed;
    } catch (const value_error&) {
      ++failed;
    }
  }
  EXPECT_EQ(sum(removed), std::int64_t{copies} * size());
  EXPECT_EQ(sum(failed), std::int64_t{5} * size());
  EXPECT_EQ(l.size(), 0u);
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// list: sort

TEST(ManagerList, SortsByLessOrReversedStably) {
  mpiproc::shared_list<int> l(world(), {3, 1, 2, 5, 4});
  on_one_rank(0, [&] { l.sort(); });
  EXPECT_EQ(l.snapshot(), (std::vector<int>{1, 2, 3, 4, 5}));
  on_one_rank(1, [&] { l.sort(true); });
  EXPECT_EQ(l.snapshot(), (std::vector<int>{5, 4, 3, 2, 1}));
  on_one_rank(2, [&] { l.sort(std::less<>{}); });
  EXPECT_EQ(l.snapshot(), (std::vector<int>{1, 2, 3, 4, 5}));
  on_one_rank(3, [&] { l.sort(std::less<>{}, true); });
  EXPECT_EQ(l.snapshot(), (std::vector<int>{5, 4, 3, 2, 1}));

  // sorted(["bb", "a", "ccc", "dd", "e"], key=len[, reverse=True]): equal keys keep their order
  const std::vector<std::string> words{"bb", "a", "ccc", "dd", "e"};
  mpiproc::shared_list<std::string> s(world(), words);
  const auto length = [](const std::string& w) { return w.size(); };
  on_one_rank(1, [&] { s.sort(length); });
  EXPECT_EQ(s.snapshot(), (std::vector<std::string>{"a", "e", "bb", "dd", "ccc"}));
  on_one_rank(2, [&] {
    s.set_slice(none, none, words);
    s.sort(length, true);
  });
  EXPECT_EQ(s.snapshot(), (std::vector<std::string>{"ccc", "bb", "dd", "a", "e"}));
  on_one_rank(3, [&] { s.sort(); });
  EXPECT_EQ(s.snapshot(), (std::vector<std::string>{"a", "bb", "ccc", "dd", "e"}));
  world().barrier();
}

TEST(ManagerList, SortsWhileOthersAppendLoseNothing) {
  mpiproc::shared_list<std::int64_t> l(world());
  const int n = 30;
  for (int i = 0; i < n; ++i) {
    l.append(std::int64_t{rank()} * 1000 + i);
    if (i % 3 == 0) l.sort(std::greater<>{});  // read, sort here, write back if unchanged
    if (i % 3 == 1) l.sort(true);              // on the owner
  }
  world().barrier();
  std::vector<std::int64_t> expected;
  for (int r = 0; r < size(); ++r)
    for (int i = 0; i < n; ++i) expected.push_back(std::int64_t{r} * 1000 + i);
  on_one_rank(0, [&] { l.sort(); });
  EXPECT_EQ(l.snapshot(), expected);
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// list: slices

TEST(ManagerList, SlicesReadAsPythonSlices) {
  mpiproc::shared_list<int> a(world(), range(10));
  using v = std::vector<int>;
  EXPECT_EQ(a.slice(none, none), range(10));  // a[:]
  EXPECT_EQ(a.slice(2, 5), (v{2, 3, 4}));
  EXPECT_EQ(a.slice(-3, none), (v{7, 8, 9}));
  EXPECT_EQ(a.slice(none, -3), (v{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(a.slice(none, none, 2), (v{0, 2, 4, 6, 8}));
  EXPECT_EQ(a.slice(none, none, -1), (v{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(a.slice(8, 2, -2), (v{8, 6, 4}));
  EXPECT_EQ(a.slice(-100, 100), range(10));
  EXPECT_EQ(a.slice(100, none), v{});
  EXPECT_EQ(a.slice(5, 2), v{});
  EXPECT_EQ(a.slice(-1, -5, -1), (v{9, 8, 7, 6}));
  EXPECT_EQ(a.slice(none, none, -3), (v{9, 6, 3, 0}));
  EXPECT_EQ(a.slice(1, 9, max64), (v{1}));
  EXPECT_EQ(a.slice(min64, max64), range(10));
  EXPECT_EQ(a.slice(max64, min64, -1), (v{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(a.slice(none, none, min64), (v{9}));
  EXPECT_EQ(a.slice(3, none, -1), (v{3, 2, 1, 0}));
  EXPECT_EQ(a.slice(-11, none, -1), v{});
  EXPECT_EQ(a.slice(none, -11, -1), (v{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(a.slice(9, -11, -4), (v{9, 5, 1}));
  EXPECT_THROW(a.slice(none, none, 0), value_error);
  EXPECT_THROW(a.set_slice(none, none, 0, {}), value_error);
  EXPECT_THROW(a.erase_slice(1, 2, 0), value_error);
  // CPython's test_list: b[2:10] of range(5), and b *= 2
  mpiproc::shared_list<int> b(world());
  EXPECT_EQ(b.slice(none, none), v{});
  world().barrier();
  on_one_rank(1, [&] { b.extend(range(5)); });
  EXPECT_EQ(b.slice(2, 10), (v{2, 3, 4}));
  on_one_rank(2, [&] { b.repeat(2); });
  EXPECT_EQ(b.snapshot(), (v{0, 1, 2, 3, 4, 0, 1, 2, 3, 4}));
  on_one_rank(3, [&] { b.repeat(0); });
  EXPECT_EQ(b.size(), 0u);
  world().barrier();
}

TEST(ManagerList, SliceAssignmentAndDeletionAsPython) {
  mpiproc::shared_list<int> a(world(), range(10));
  using v = std::vector<int>;
  int turn = 0;
  const auto step = [&](const std::function<void()>& change, const v& expected) {
    on_one_rank(turn++, change);
    EXPECT_EQ(a.snapshot(), expected) << "after step " << turn;
  };
  step([&] { a.set_slice(2, 5, {20, 30}); }, {0, 1, 20, 30, 5, 6, 7, 8, 9});
  step([&] { a.set_slice(5, 2, {7}); }, {0, 1, 20, 30, 5, 7, 6, 7, 8, 9});
  step([&] { a.set_slice(none, none, 2, {0, 0, 0, 0, 0}); }, {0, 1, 0, 30, 0, 7, 0, 7, 0, 9});
  step([&] { a.set_slice(-100, 1, {}); }, {1, 0, 30, 0, 7, 0, 7, 0, 9});
  step([&] { a.set_slice(100, none, {99}); }, {1, 0, 30, 0, 7, 0, 7, 0, 9, 99});
  step([&] { a.set_slice(none, none, -3, {1, 2, 3, 4}); }, {4, 0, 30, 3, 7, 0, 2, 0, 9, 1});
  step(
      [&] {
        // a[::2] = [1]: "attempt to assign sequence of size 1 to extended slice of size 5"
        EXPECT_THROW(a.set_slice(none, none, 2, {1}), value_error);
      },
      {4, 0, 30, 3, 7, 0, 2, 0, 9, 1});
  step([&] { a.erase_slice(none, none, 3); }, {0, 30, 7, 0, 0, 9});
  step([&] { a.erase_slice(-2, none); }, {0, 30, 7, 0});
  step([&] { a.erase_slice(8, 2, -2); }, {0, 30, 7});
  step([&] { a.erase_slice(5, 1); }, {0, 30, 7});
  step([&] { a.set_slice(none, none, {}); }, {});
  world().barrier();
}

TEST(ManagerList, ConcurrentSliceChangesStayWhole) {
  mpiproc::shared_list<int> l(world());
  const int blocks = 25;
  for (int i = 0; i < blocks; ++i) l.set_slice(0, 0, {rank(), rank(), rank()});  // l[0:0] = [r] * 3
  world().barrier();
  const std::vector<int> all = l.snapshot();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(3 * blocks * size()));
  std::map<int, int> per_rank;
  for (std::size_t i = 0; i < all.size(); i += 3) {
    EXPECT_EQ(all[i], all[i + 1]);
    EXPECT_EQ(all[i], all[i + 2]);
    ++per_rank[all[i]];
  }
  for (int r = 0; r < size(); ++r) EXPECT_EQ(per_rank[r], blocks);
  world().barrier();
  for (int i = 0; i < blocks; ++i) l.erase_slice(none, 2);  // del l[:2]
  world().barrier();
  EXPECT_EQ(l.size(), static_cast<std::uint64_t>(blocks * size()));
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// list: iteration

TEST(ManagerList, RangeForWalksASnapshotTakenAtBegin) {
  mpiproc::shared_list<int> a(world(), range(10));
  std::vector<int> seen;
  for (int x : a) seen.push_back(x);
  EXPECT_EQ(seen, range(10));
  world().barrier();
  on_one_rank(0, [&] {
    for (int x : a) a.append(x);  // ends: it walks the 10 items there at begin()
  });
  EXPECT_EQ(a.size(), 20u);
  auto it = a.begin();
  EXPECT_EQ(*it, 0);
  world().barrier();
  on_one_rank(1, [&] { a.set(0, 100); });
  EXPECT_EQ(*it, 0);  // Python's iterator would see 100: this one holds its snapshot
  world().barrier();
  mpiproc::shared_list<int> empty(world());
  EXPECT_TRUE(empty.begin() == empty.end());
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// dict

TEST(ManagerDict, KeysValuesItemsAndIterationAsCPythonsTest) {
  // CPython's test_dict: d[i] = chr(i) for i in range(65, 70)
  mpiproc::shared_dict<int, std::string> d(world());
  std::vector<int> indices;
  std::vector<std::string> letters;
  std::vector<std::pair<int, std::string>> pairs;
  std::map<int, std::string> copy;
  for (int i = 65; i < 70; ++i) {
    indices.push_back(i);
    letters.emplace_back(1, static_cast<char>(i));
    pairs.emplace_back(i, letters.back());
    copy[i] = letters.back();
  }
  on_one_rank(0, [&] {
    for (int i = 65; i < 70; ++i) d.set(i, std::string(1, static_cast<char>(i)));
  });
  EXPECT_EQ(d.snapshot(), copy);
  auto keys = d.keys();
  auto values = d.values();
  auto items = d.items();
  std::sort(keys.begin(), keys.end());
  std::sort(values.begin(), values.end());
  std::sort(items.begin(), items.end());
  EXPECT_EQ(keys, indices);
  EXPECT_EQ(values, letters);
  EXPECT_EQ(items, pairs);
  std::vector<std::pair<int, std::string>> walked;
  for (const auto& [key, value] : d) walked.emplace_back(key, value);
  EXPECT_EQ(walked, d.items());  // the same order as items()
  EXPECT_EQ(d.get(65, "?"), "A");
  EXPECT_EQ(d.get(1, "?"), "?");
  world().barrier();
  mpiproc::shared_dict<int, int> empty(world());
  EXPECT_TRUE(empty.begin() == empty.end());
  EXPECT_TRUE(empty.keys().empty());
  world().barrier();
}

TEST(ManagerDict, OnOneRankKeysKeepPythonsInsertionOrderAndPopitemIsLifo) {
  const mpiproc::communicator self{MPI_COMM_SELF};  // a dict of this rank's own
  mpiproc::shared_dict<std::string, int> d(self);
  d.set("b", 1);
  d.set("a", 2);
  d.set("c", 3);
  d.set("b", 4);  // keeps its place
  EXPECT_EQ(d.keys(), (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_EQ(d.values(), (std::vector<int>{4, 2, 3}));
  EXPECT_TRUE(d.erase("b"));
  d.set("b", 5);  // goes last
  EXPECT_EQ(d.setdefault("d", 6), 6);
  EXPECT_EQ(d.setdefault("a", 7), 2);
  EXPECT_EQ(d.items(), (std::vector<std::pair<std::string, int>>{{"a", 2}, {"c", 3}, {"b", 5}, {"d", 6}}));
  EXPECT_EQ(d.popitem(), (std::pair<std::string, int>{"d", 6}));
  EXPECT_EQ(d.popitem(), (std::pair<std::string, int>{"b", 5}));
  EXPECT_EQ(d.pop("a"), 2);
  EXPECT_EQ(d.popitem(), (std::pair<std::string, int>{"c", 3}));
  EXPECT_THROW(d.popitem(), key_error);
  EXPECT_THROW(d.pop("a"), key_error);
  EXPECT_EQ(d.pop("a", -1), -1);
  EXPECT_EQ(d.size(), 0u);
}

TEST(ManagerDict, OnOneNodeKeysFromEveryRankKeepOneInsertionOrder) {
  if (!on_one_node()) GTEST_SKIP() << "over several nodes each owner keeps its own order";
  mpiproc::shared_dict<std::int64_t, std::int64_t> d(world());
  std::vector<std::int64_t> order;
  for (int turn = 0; turn < 3 * size(); ++turn) {  // the ranks take turns, each setting two keys
    const std::int64_t key = 100 - turn;
    on_one_rank(turn, [&] {
      d.set(key, turn);
      d.set(1000 + key, turn);
    });
    order.push_back(key);
    order.push_back(1000 + key);
  }
  on_one_rank(1, [&] { d.set(100, -1); });  // set again: keeps its place
  EXPECT_EQ(d.keys(), order);
  on_one_rank(2, [&] { EXPECT_TRUE(d.erase(100)); });
  on_one_rank(3, [&] { d.set(100, -2); });  // erased and set again: goes last
  order.erase(order.begin());
  order.push_back(100);
  EXPECT_EQ(d.keys(), order);
  on_one_rank(4, [&] { EXPECT_EQ(d.popitem(), (std::pair<std::int64_t, std::int64_t>{100, -2})); });
  on_one_rank(5, [&] { EXPECT_EQ(d.popitem().first, order[order.size() - 2]); });
  EXPECT_EQ(d.size(), order.size() - 2);
  world().barrier();
}

TEST(ManagerDict, ValuesThatGrowShrinkAndComeBackStayExact) {
  mpiproc::shared_dict<std::int64_t, std::string> d(world());
  const int keys = 600;
  const auto value = [](std::int64_t key, int round) {
    const auto length = static_cast<std::size_t>((key * 37 + round * 1013) % 3001);  // 0 to 3000 bytes
    return std::string(length, static_cast<char>('a' + (key + round) % 26));
  };
  std::map<std::int64_t, std::string> expected;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < keys; ++i) {
      const std::int64_t key = std::int64_t{rank()} * keys + i;
      if (round == 2 && i % 3 == 0)
        EXPECT_TRUE(d.erase(key));
      else
        d.set(key, value(key, round));
    }
  }
  world().barrier();
  for (int r = 0; r < size(); ++r)
    for (int i = 0; i < keys; ++i) expected[std::int64_t{r} * keys + i] = value(std::int64_t{r} * keys + i, 3);
  EXPECT_EQ(d.snapshot(), expected);
  EXPECT_EQ(d.size(), expected.size());
  world().barrier();
  if (rank() == 0) d.clear();
  world().barrier();
  EXPECT_EQ(d.size(), 0u);
  EXPECT_FALSE(d.contains(0));
  world().barrier();
  d.set(-1 - rank(), std::string(70'000, 'z'));  // after clear, blocks are reused and the dict works on
  world().barrier();
  EXPECT_EQ(d.size(), static_cast<std::uint64_t>(size()));
  EXPECT_EQ(d.at(-size()), std::string(70'000, 'z'));
  world().barrier();
  d.set(-1 - rank(), "short");  // a big block shrinks, and grows again
  EXPECT_EQ(d.at(-1 - rank()), "short");
  d.set(-1 - rank(), std::string(200'000, 'y'));
  world().barrier();
  EXPECT_EQ(d.at(-size()), std::string(200'000, 'y'));
  world().barrier();
}

TEST(ManagerDict, ConcurrentUpdatesThatGrowOneValueLoseNothing) {
  mpiproc::shared_dict<std::string, std::string> d(world());
  const int n = 150;
  for (int i = 0; i < n; ++i)
    d.update("log", [](std::optional<std::string> v) { return v.value_or("") + static_cast<char>('A' + rank()); });
  world().barrier();
  const std::string log = d.at("log");
  EXPECT_EQ(log.size(), static_cast<std::size_t>(n * size()));
  for (int r = 0; r < size(); ++r)
    EXPECT_EQ(std::count(log.begin(), log.end(), static_cast<char>('A' + r)), n) << "rank " << r;
  world().barrier();
}

TEST(ManagerDict, ConcurrentSetdefaultHasExactlyOneWinnerPerKey) {
  mpiproc::shared_dict<std::int64_t, std::int64_t> d(world());
  const int keys = 40;
  std::vector<std::int64_t> got;
  for (int k = 0; k < keys; ++k) got.push_back(d.setdefault(k, rank()));
  const std::vector<std::int64_t> all = test::all_gather(got);  // rank r's answers at r * keys
  for (int k = 0; k < keys; ++k) {
    int winners = 0;
    const std::int64_t first = all[static_cast<std::size_t>(k)];
    for (int r = 0; r < size(); ++r) {
      const std::int64_t answer = all[static_cast<std::size_t>(r * keys + k)];
      EXPECT_EQ(answer, first) << "key " << k << " on rank " << r;
      winners += answer == r;
    }
    EXPECT_EQ(winners, 1) << "key " << k;
    EXPECT_EQ(d.at(k), first);
  }
  world().barrier();
}

TEST(ManagerDict, ConcurrentPopsTakeEachKeyOnce) {
  mpiproc::shared_dict<std::int64_t, std::int64_t> d(world());
  const int per_rank = 30;
  for (int i = 0; i < per_rank; ++i) d.set(std::int64_t{rank()} * 1000 + i, std::int64_t{rank()} * 1000 + i + 7);
  world().barrier();
  std::vector<std::int64_t> mine(static_cast<std::size_t>(per_rank * size()), 0);
  for (int k = 0; k < size(); ++k) {  // every rank tries every key, each starting at its own
    const int r = (rank() + k) % size();
    for (int i = 0; i < per_rank; ++i) {
      const std::int64_t key = std::int64_t{r} * 1000 + i;
      const std::int64_t value = d.pop(key, -1);
      if (value != -1) {
        EXPECT_EQ(value, key + 7);
        ++mine[static_cast<std::size_t>(r * per_rank + i)];
      }
    }
  }
  std::vector<std::int64_t> total(mine.size());
  MPI_Allreduce(mine.data(), total.data(), static_cast<int>(mine.size()), MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  for (std::int64_t times : total) EXPECT_EQ(times, 1);
  EXPECT_EQ(d.size(), 0u);
  EXPECT_THROW(d.pop(0), key_error);
  world().barrier();
}

TEST(ManagerDict, ConcurrentPopitemsTakeEveryEntryOnceThenRaiseKeyError) {
  mpiproc::shared_dict<std::int64_t, std::int64_t> d(world());
  const int per_rank = 25;
  for (int i = 0; i < per_rank; ++i) d.set(std::int64_t{rank()} * 1000 + i, -i);
  world().barrier();
  std::vector<std::int64_t> taken;
  for (;;) {
    try {
      auto [key, value] = d.popitem();
      EXPECT_EQ(value, -(key % 1000));
      taken.push_back(key);
    } catch (const key_error&) {
      break;
    }
  }
  std::vector<std::int64_t> all = test::all_gather(taken), expected;
  std::sort(all.begin(), all.end());
  for (int r = 0; r < size(); ++r)
    for (int i = 0; i < per_rank; ++i) expected.push_back(std::int64_t{r} * 1000 + i);
  EXPECT_EQ(all, expected);
  EXPECT_THROW(d.popitem(), key_error);
  world().barrier();
}
