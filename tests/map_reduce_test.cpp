// The map-reduce layer: for random ranges (empty, one item, fewer items than ranks, bounds near the
// 64-bit limits) and every schedule, every item is visited exactly once, map keeps input order and
// reductions are exact, on every rank.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <boost/multiprecision/cpp_int.hpp>
#include <boost/serialization/vector.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using mpiproc::range;
using mpiproc::schedule;
using test::describe;
using test::world;

namespace {

/// Ranges of int64 positions: fixed edge cases plus seeded random ones (the same on every rank).
std::vector<range<std::int64_t>> test_ranges() {
  constexpr auto lo = std::numeric_limits<std::int64_t>::min(), hi = std::numeric_limits<std::int64_t>::max();
  std::vector<range<std::int64_t>> ranges{{0, 0},     {5, 5},      {0, 1},         {-7, -6},  {0, 2},  {10, 13},
                                          {-50, 50},  {0, 1000},   {hi - 37, hi},  {lo, lo + 29}, {hi - 1, hi}};
  std::mt19937_64 gen(12345);
  for (int k = 0; k < 12; ++k) {
    const std::int64_t size = std::uniform_int_distribution<std::int64_t>(0, 3000)(gen);
    const std::int64_t first = std::uniform_int_distribution<std::int64_t>(-1'000'000, 1'000'000)(gen);
    ranges.push_back({first, first + size});
  }
  return ranges;
}

/// Every item of `r` that `visited` holds (from all ranks) exactly once, and nothing else?
void expect_each_once(std::vector<std::int64_t> visited, const range<std::int64_t>& r, const std::string& what) {
  std::sort(visited.begin(), visited.end());
  const std::vector<std::int64_t> expected(r.begin(), r.end());
  EXPECT_EQ(visited, expected) << what;
}

}  // namespace

TEST(ForEach, VisitsEveryItemExactlyOnce) {
  for (const auto& r : test_ranges())
    for (const auto& s : test::every_schedule()) {
      std::vector<std::int64_t> mine;
      mpiproc::for_each(world(), r, [&](std::int64_t i) { mine.push_back(i); }, s);
      expect_each_once(test::all_gather(mine), r, "[" + std::to_string(r.first()) + ", " + std::to_string(r.last()) + ") " + describe(s));
    }
}

TEST(ForEach, ChunkFormCoversEveryItemExactlyOnce) {
  for (const auto& r : test_ranges())
    for (const auto& s : test::every_schedule()) {
      std::vector<std::int64_t> mine;
      mpiproc::for_each_chunks(world(), r, [&](range<std::int64_t> chunk) {
        EXPECT_FALSE(chunk.empty());
        for (auto i : chunk) mine.push_back(i);
      }, s);
      expect_each_once(test::all_gather(mine), r, describe(s));
    }
}

TEST(ForEach, UnsignedRangeAtTheTopOfSixtyFourBits) {
  constexpr auto top = std::numeric_limits<std::uint64_t>::max();
  const range<std::uint64_t> r{top - 23, top};
  for (const auto& s : test::every_schedule()) {
    std::vector<std::int64_t> offsets;
    mpiproc::for_each(world(), r, [&](std::uint64_t i) { offsets.push_back(static_cast<std::int64_t>(i - (top - 23))); }, s);
    expect_each_once(test::all_gather(offsets), range<std::int64_t>{0, 23}, describe(s));
  }
}

TEST(ForEach, ItemsFromRankZero) {
  std::vector<std::string> items;
  if (world().rank() == 0) items = {"a", "bb", "ccc", "dddd", "eeeee"};
  for (const auto& s : test::every_schedule()) {
    std::vector<std::int64_t> lengths;
    mpiproc::for_each(world(), items, [&](const std::string& item) { lengths.push_back(static_cast<std::int64_t>(item.size())); }, s);
    expect_each_once(test::all_gather(lengths), range<std::int64_t>{1, 6}, describe(s));
  }
}

TEST(Map, ResultsInInputOrderOnEveryRank) {
  for (const auto& r : test_ranges())
    for (const auto& s : test::every_schedule()) {
      // Wrapping arithmetic: the ranges reach the 64-bit limits.
      auto f = [](std::int64_t i) { return static_cast<std::int64_t>(static_cast<std::uint64_t>(i) * 3 + 1); };
      const auto got = mpiproc::map(world(), r, f, s);
      std::vector<std::int64_t> expected;
      for (auto i : r) expected.push_back(f(i));
      EXPECT_EQ(got, expected) << describe(s);
    }
}

TEST(Map, RootFormOnlyOnRoot) {
  const int root = world().size() - 1;
  const auto got = mpiproc::map_root(world(), root, range<int>{0, 10}, [](int i) { return i * i; }, schedule::dynamic(2));
  if (world().rank() == root)
    EXPECT_EQ(got, (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}));
  else
    EXPECT_TRUE(got.empty());
}

TEST(Map, RootTakesResultsLargerThanOneMessage) {
  // A root takes the other ranks' numbers in messages of 8 MiB (1 Mi of int64) and places each
  // where its chunk says: here each rank's share spans several messages, cut mid-chunk.
  const int root = world().size() - 1;
  const std::int64_t n = 3'000'007;
  auto f = [](std::int64_t i) { return i * 7 - 3; };
  for (const auto& s : {schedule::cyclic(3), schedule::block(), schedule::dynamic(100'003), schedule::guided(),
                        schedule::dynamic()}) {
    auto expect_all = [&](const std::vector<std::int64_t>& got, const char* call) {
      ASSERT_EQ(got.size(), static_cast<std::size_t>(n)) << call << " " << describe(s);
      std::int64_t wrong = 0, first_wrong = -1;
      for (std::int64_t i = 0; i < n; ++i)
        if (got[static_cast<std::size_t>(i)] != f(i) && wrong++ == 0) first_wrong = i;
      EXPECT_EQ(wrong, 0) << call << ": first at " << first_wrong << " " << describe(s);
    };
    // map gathers on rank 0 the same way, then broadcasts.
    expect_all(mpiproc::map(world(), range<std::int64_t>{0, n}, f, s), "map");
    // Items too travel in messages of 8 MiB, packed one message at a time under cyclic.
    std::vector<std::int64_t> items;
    if (world().rank() == 0)
      for (std::int64_t i = 0; i < n; ++i) items.push_back(i);
    expect_all(mpiproc::map(world(), items, f, s), "map over items");
    EXPECT_EQ(mpiproc::map_reduce(world(), items, [](std::int64_t i) { return i; }, std::plus<>{}, s), n * (n - 1) / 2)
        << describe(s);
    const auto got = mpiproc::map_root(world(), root, range<std::int64_t>{0, n}, f, s);
    if (world().rank() == root)
      expect_all(got, "map_root");
    else
      EXPECT_TRUE(got.empty()) << describe(s);
  }
}

namespace {
std::string label(int i) {  // strings of varying length: a type that needs serialization
  std::string text(static_cast<std::size_t>(i % 7), 'x');
  text += std::to_string(i);
  return text;
}
}  // namespace

TEST(Map, SerializedResultsInOrder) {
  for (const auto& s : test::every_schedule()) {
    const auto got = mpiproc::map(world(), range<int>{0, 40}, label, s);
    ASSERT_EQ(got.size(), 40u);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], label(i));
  }
}

TEST(Map, ItemsLikePoolMap) {
  std::vector<std::string> words;
  if (world().rank() == 0) words = {"process", "pool", "queue", "pipe", "lock", "semaphore", "value"};
  for (const auto& s : test::every_schedule()) {
    const auto lengths = mpiproc::map(world(), words, [](const std::string& w) { return w.size(); }, s);
    EXPECT_EQ(lengths, (std::vector<std::size_t>{7, 4, 5, 4, 4, 9, 5})) << describe(s);
    const auto upper = mpiproc::map_root(world(), 0, words, [](const std::string& w) { return w.substr(0, 2); }, s);
    if (world().rank() == 0) EXPECT_EQ(upper, (std::vector<std::string>{"pr", "po", "qu", "pi", "lo", "se", "va"}));
    else EXPECT_TRUE(upper.empty());
  }
}

TEST(Map, OtherRanksItemsAreReplacedByTheSources) {
  // The items are decoded into the vector each rank passed: whatever a rank had there (more
  // items, longer ones, nested vectors) must give way to rank 0's, call after call.
  for (int call = 0; call < 3; ++call) {
    std::vector<std::vector<std::string>> items;
    if (world().rank() == 0)
      items = {{"a"}, {}, {"b", "c"}};
    else
      items.assign(5 + static_cast<std::size_t>(call), {"left over", "from this rank", "that rank 0 never sent"});
    const auto sizes = mpiproc::map(world(), items, [](const std::vector<std::string>& v) {
      std::string joined;
      for (const auto& w : v) joined += w;
      return joined;
    });
    EXPECT_EQ(sizes, (std::vector<std::string>{"a", "", "bc"})) << "call " << call;
  }
}

TEST(Map, ItemsFromAnyRootUnderEverySchedule) {
  // Under block and cyclic schedules each rank receives only its share of the items; the results
  // must still be every item's, in order. Numbers travel raw, strings encoded.
  const int root = world().size() - 1;
  for (const std::size_t n : {std::size_t{0}, std::size_t{2}, std::size_t{1001}}) {
    auto held_by = [&](int holder, auto make) {
      std::vector<decltype(make(0))> items;
      if (world().rank() == holder)
        for (std::size_t i = 0; i < n; ++i) items.push_back(make(static_cast<int>(i)));
      else
        items.resize(3);  // left over on the other ranks: ignored
      return items;
    };
    const auto numbers = held_by(root, [](int i) { return i * 0.25; });
    const auto words = held_by(root, label);
    const auto words_on_0 = held_by(0, label);
    for (const auto& s : test::every_schedule()) {
      const auto doubled = mpiproc::map_root(world(), root, numbers, [](double x) { return 2 * x; }, s);
      const auto sizes = mpiproc::map_root(world(), root, words, [](const std::string& w) { return w.size(); }, s);
      const auto echoed = mpiproc::map(world(), words_on_0, [](const std::string& w) { return w + "!"; }, s);
      ASSERT_EQ(echoed.size(), n) << describe(s);
      for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(echoed[i], label(static_cast<int>(i)) + "!") << describe(s);
      if (world().rank() != root) {
        EXPECT_TRUE(doubled.empty() && sizes.empty()) << describe(s);
        continue;
      }
      ASSERT_EQ(doubled.size(), n) << describe(s);
      ASSERT_EQ(sizes.size(), n) << describe(s);
      for (std::size_t i = 0; i < n; ++i) {
        EXPECT_EQ(doubled[i], static_cast<double>(i) * 0.5) << i << " " << describe(s);
        EXPECT_EQ(sizes[i], label(static_cast<int>(i)).size()) << i << " " << describe(s);
      }
    }
  }
}

TEST(Map, ItemsFetchedChunkByChunkUnderDynamicAndGuided) {
  // Under these schedules each rank fetches its chunks' items from the holder as it takes them:
  // every result in order, strings encoded, booleans (packed bits in a vector) too, and an error in
  // the function on any rank reaches every rank.
  const int holder = world().size() - 1;
  const std::size_t n = 3000;
  std::vector<std::string> words;
  std::vector<bool> flags;
  for (std::size_t i = 0; i < n; ++i) {
    if (world().rank() == holder) words.push_back(label(static_cast<int>(i)));
    if (world().rank() == 0) flags.push_back(i % 7 == 0);  // map's items are rank 0's
  }
  for (const auto& s : {schedule::dynamic(64), schedule::dynamic(), schedule::guided(), schedule::guided(100)}) {
    const auto echoed = mpiproc::map_root(world(), holder, words, [](const std::string& w) { return w + "!"; }, s);
    const auto bits = mpiproc::map(world(), flags, [](bool f) { return f ? 7 : 1; }, s);
    ASSERT_EQ(bits.size(), n) << describe(s);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(bits[i], i % 7 == 0 ? 7 : 1) << i << " " << describe(s);
    if (world().rank() == holder) {
      ASSERT_EQ(echoed.size(), n) << describe(s);
      for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(echoed[i], label(static_cast<int>(i)) + "!") << describe(s);
    }
    EXPECT_THROW(mpiproc::map_root(world(), holder, words,
                                   [](const std::string& w) {
                                     if (w == label(2999)) throw std::runtime_error("bad word");
                                     return w.size();
                                   },
                                   s),
                 mpiproc::remote_error)
        << describe(s);
  }
}

TEST(Map, BooleanResults) {
  // std::vector<bool> packs bits; it must still come back whole and in order.
  for (const auto& s : test::every_schedule()) {
    const auto got = mpiproc::map(world(), range<int>{0, 30}, [](int i) { return i % 3 == 0; }, s);
    ASSERT_EQ(got.size(), 30u);
    for (int i = 0; i < 30; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i % 3 == 0) << i;
  }
}

TEST(MapReduce, IntegerSumIsExact) {
  for (const auto& r : test_ranges()) {
    if (r.first() < -1'000'000'000 || r.last() > 1'000'000'000) continue;  // keep sums in range
    std::int64_t expected = 0;
    for (auto i : r) expected += i * i;
    for (const auto& s : test::every_schedule())
      EXPECT_EQ(mpiproc::map_reduce(world(), r, [](std::int64_t i) { return i * i; }, std::plus<>{}, s), expected) << describe(s);
  }
}

TEST(MapReduce, EmptyRangeGivesTheIdentity) {
  const range<int> none{4, 4};
  auto one = [](int) { return 1; };
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, std::plus<>{}), 0);
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, std::multiplies<>{}), 1);
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, mpiproc::minimum{}), std::numeric_limits<int>::max());
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, mpiproc::maximum{}), std::numeric_limits<int>::lowest());
  auto half = [](int i) { return i * 0.5; };
  EXPECT_EQ(mpiproc::map_reduce(world(), none, half, mpiproc::minimum{}), std::numeric_limits<double>::infinity());
  EXPECT_EQ(mpiproc::map_reduce(world(), none, half, mpiproc::maximum{}), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, std::logical_and<>{}), 1);
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, std::bit_and<>{}), -1);
  auto larger = [](int a, int b) { return std::max(a, b); };
  EXPECT_EQ(mpiproc::map_reduce(world(), none, one, mpiproc::reduction{larger, -1}), -1);
  EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 9}, [](int i) { return i; }, mpiproc::reduction{larger, -1}), 8);
}

TEST(MapReduce, MinMaxAndBitOperators) {
  const range<std::int64_t> r{-20, 33};
  auto f = [](std::int64_t i) { return (i * 7919) % 101; };
  std::int64_t lo = 1000, hi = -1000, x = 0, o = 0;
  for (auto i : r) { lo = std::min(lo, f(i)); hi = std::max(hi, f(i)); x ^= f(i); o |= f(i); }
  for (const auto& s : test::every_schedule()) {
    EXPECT_EQ(mpiproc::map_reduce(world(), r, f, mpiproc::minimum{}, s), lo);
    EXPECT_EQ(mpiproc::map_reduce(world(), r, f, mpiproc::maximum{}, s), hi);
    EXPECT_EQ(mpiproc::map_reduce(world(), r, f, std::bit_xor<>{}, s), x);
    EXPECT_EQ(mpiproc::map_reduce(world(), r, f, std::bit_or<>{}, s), o);
  }
}

TEST(MapReduce, DoublesAndFloatsOfExactValues) {
  // Halves sum exactly in binary floating point, whatever the order.
  for (const auto& s : test::every_schedule()) {
    EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 1001}, [](int i) { return i * 0.5; }, std::plus<>{}, s), 250250.0);
    EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 101}, [](int i) { return static_cast<float>(i); }, std::plus<>{}, s), 5050.0f);
  }
}

TEST(MapReduce, InexactSumsAreTheSameBitsOnEveryRank) {
  // Sums of thirds round differently in different orders: every rank must still get one value.
  for (const auto& s : test::every_schedule()) {
    const double got = mpiproc::map_reduce(world(), range<int>{1, 100'001}, [](int i) { return 1.0 / (3 * i); },
                                           std::plus<>{}, s);
    const long double wide = mpiproc::map_reduce(world(), range<int>{1, 1001},
                                                 [](int i) { return 1.0L / (7 * i); }, std::plus<>{}, s);
    std::vector<double> all(static_cast<std::size_t>(world().size()));
    std::vector<long double> all_wide(all.size());
    MPI_Allgather(&got, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD);
    MPI_Allgather(&wide, 1, MPI_LONG_DOUBLE, all_wide.data(), 1, MPI_LONG_DOUBLE, MPI_COMM_WORLD);
    for (std::size_t r = 1; r < all.size(); ++r) {
      EXPECT_EQ(std::memcmp(&all[r], &all[0], sizeof(double)), 0) << "rank " << r << " " << describe(s);
      EXPECT_EQ(all_wide[r], all_wide[0]) << "rank " << r << " " << describe(s);
    }
    EXPECT_NEAR(got, 4.0300487, 1e-6);
  }
}

TEST(MapReduce, BooleanAndNarrowResults) {
  for (const auto& s : test::every_schedule()) {
    EXPECT_TRUE(mpiproc::map_reduce(world(), range<int>{0, 50}, [](int i) { return i < 50; }, std::logical_and<>{}, s));
    EXPECT_FALSE(mpiproc::map_reduce(world(), range<int>{0, 50}, [](int i) { return i == 60; }, std::logical_or<>{}, s));
    EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 50}, [](int i) { return static_cast<std::int8_t>(i % 3); },
                                  mpiproc::maximum{}, s),
              2);
    EXPECT_EQ(mpiproc::map_reduce_root(world(), world().size() - 1, range<int>{0, 50},
                                       [](int i) { return static_cast<std::uint16_t>(i); }, std::plus<>{}, s)
                  .value_or(1225),
              1225);
  }
}

namespace {
struct stats {  // trivially copyable: travels as raw bytes
  std::int64_t count = 0, sum = 0, max = std::numeric_limits<std::int64_t>::lowest();
};
stats merge(const stats& a, const stats& b) { return {a.count + b.count, a.sum + b.sum, std::max(a.max, b.max)}; }
}  // namespace

TEST(MapReduce, TriviallyCopyableStruct) {
  for (const auto& s : test::every_schedule()) {
    const stats got = mpiproc::map_reduce(world(), range<std::int64_t>{-100, 900},
                                          [](std::int64_t i) { return stats{1, i, i}; }, mpiproc::reduction{merge, stats{}}, s);
    EXPECT_EQ(got.count, 1000);
    EXPECT_EQ(got.sum, 399500);
    EXPECT_EQ(got.max, 899);
  }
}

TEST(MapReduce, SerializedBigIntegerProduct) {
  using boost::multiprecision::cpp_int;
  cpp_int expected = 1;
  for (int i = 1; i <= 60; ++i) expected *= i;
  for (const auto& s : test::every_schedule()) {
    const cpp_int got = mpiproc::map_reduce(world(), range<int>{1, 61}, [](int i) { return cpp_int(i); }, std::multiplies<>{}, s);
    EXPECT_EQ(got, expected) << describe(s);  // 60! has 272 bits: far past any 64-bit type
  }
}

TEST(MapReduce, SerializedVectorMerge) {
  auto merge_sorted = [](std::vector<int> a, const std::vector<int>& b) {
    a.insert(a.end(), b.begin(), b.end());
    std::sort(a.begin(), a.end());
    return a;
  };
  for (const auto& s : test::every_schedule()) {
    const auto got = mpiproc::map_reduce(world(), range<int>{0, 57}, [](int i) { return std::vector<int>{i, -i}; },
                                         mpiproc::reduction{merge_sorted, std::vector<int>{}}, s);
    std::vector<int> expected;
    for (int i = 0; i < 57; ++i) expected.insert(expected.end(), {i, -i});
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(got, expected) << describe(s);
  }
}

TEST(MapReduce, ChunkFormSeesWholeSubranges) {
  const range<std::int64_t> r{1, 100'001};
  for (const auto& s : test::every_schedule()) {
    const std::int64_t sum = mpiproc::map_reduce_chunks(world(), r, [](range<std::int64_t> chunk) {
      std::int64_t local = 0;
      for (std::int64_t i = chunk.first(); i < chunk.last(); ++i) local += i;
      return local;
    }, std::plus<>{}, s);
    EXPECT_EQ(sum, std::int64_t{100'000} * 100'001 / 2) << describe(s);
  }
}

TEST(MapReduce, RootFormOnlyOnRoot) {
  for (int root = 0; root < world().size(); ++root) {
    const auto got = mpiproc::map_reduce_root(world(), root, range<int>{0, 100}, [](int i) { return i; }, std::plus<>{});
    if (world().rank() == root) {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, 4950);
    } else {
      EXPECT_FALSE(got.has_value());
    }
  }
}

TEST(MapReduce, ItemsOnRankZero) {
  std::vector<std::int64_t> items;
  if (world().rank() == 0) items = {5, -3, 12, 40, 7};
  EXPECT_EQ(mpiproc::map_reduce(world(), items, [](std::int64_t v) { return v * 2; }, std::plus<>{}, schedule::dynamic(1)), 122);
}

TEST(MapReduce, ItemsReachTheRanksThatComputeThemUnderEverySchedule) {
  // map_reduce and for_each over items send each rank its share (block, cyclic) or fetch each
  // chunk's items (dynamic, guided) as map does: every item counted once, numbers and strings, and
  // an error in the function on any rank reaches every rank.
  const std::int64_t n = 3000;
  std::vector<std::int64_t> numbers(3, -1);  // the other ranks' items are ignored
  std::vector<std::string> words;
  if (world().rank() == 0) {
    numbers.clear();
    for (std::int64_t i = 0; i < n; ++i) numbers.push_back(i), words.push_back(label(static_cast<int>(i)));
  }
  std::int64_t letters = 0;
  for (std::int64_t i = 0; i < n; ++i) letters += static_cast<std::int64_t>(label(static_cast<int>(i)).size());
  auto schedules = test::every_schedule();
  schedules.insert(schedules.end(), {schedule::dynamic(64), schedule::guided(100)});
  for (const auto& s : schedules) {
    EXPECT_EQ(mpiproc::map_reduce(world(), numbers, [](std::int64_t v) { return 3 * v; }, std::plus<>{}, s),
              3 * n * (n - 1) / 2)
        << describe(s);
    EXPECT_EQ(mpiproc::map_reduce(world(), words, [](const std::string& w) { return static_cast<std::int64_t>(w.size()); },
                                  std::plus<>{}, s),
              letters)
        << describe(s);
    std::vector<std::int64_t> seen;
    mpiproc::for_each(world(), numbers, [&](std::int64_t v) { seen.push_back(v); }, s);
    expect_each_once(test::all_gather(seen), range<std::int64_t>{0, n}, "for_each " + describe(s));
    EXPECT_THROW(mpiproc::map_reduce(world(), words,
                                     [](const std::string& w) -> int {
                                       if (w == label(2999)) throw std::runtime_error("bad word");
                                       return 1;
                                     },
                                     std::plus<>{}, s),
                 mpiproc::remote_error)
        << describe(s);
  }
}

TEST(MapReduce, MoreRanksThanItems) {
  for (const auto& s : test::every_schedule()) {
    EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{7, 8}, [](int i) { return i; }, std::plus<>{}, s), 7);
    EXPECT_EQ(mpiproc::map(world(), range<int>{7, 9}, [](int i) { return i; }, s), (std::vector<int>{7, 8}));
  }
}

TEST(MapReduce, DynamicSpreadsIrregularWork) {
  // One chunk per item; item 0 costs 0.5 s, the rest nothing. The rank stuck on item 0 must take
  // fewer than its static share while the others take the rest.
  if (world().size() < 2) GTEST_SKIP() << "needs two ranks";
  std::int64_t taken = 0, had_item0 = 0;
  mpiproc::for_each(world(), range<int>{0, 64}, [&](int i) {
    ++taken;
    if (i == 0) {
      had_item0 = 1;
      const double until = MPI_Wtime() + 0.5;
      while (MPI_Wtime() < until) {
      }
    }
  }, schedule::dynamic(1));
  const auto counts = test::all_gather({taken});
  const auto item0 = test::all_gather({had_item0});
  const auto stuck = static_cast<std::size_t>(std::find(item0.begin(), item0.end(), 1) - item0.begin());
  ASSERT_LT(stuck, counts.size());
  EXPECT_LT(counts[stuck], 64 / world().size());
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}), 64);
}

TEST(MapReduce, BusyOwnerDoesNotStallTheOthers) {
  // Rank 0 owns the dynamic schedule's counter. It computes for 2 s in its first item and makes no
  // MPI call meanwhile; the other ranks must go on taking (and finish) all other items.
  if (world().size() < 2) GTEST_SKIP() << "needs two ranks";
  const double start = MPI_Wtime();
  std::int64_t taken = 0;
  double last_take = 0;
  mpiproc::for_each(world(), range<int>{0, 200}, [&](int) {
    if (++taken == 1 && world().rank() == 0) {
      const double until = MPI_Wtime() + 2.0;
      while (MPI_Wtime() < until) {
      }
    }
    last_take = MPI_Wtime() - start;
  }, schedule::dynamic(1));
  const auto counts = test::all_gather({taken});
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}), 200);
  if (world().rank() != 0) {
    EXPECT_LT(last_take, 1.5) << "rank " << world().rank() << " waited for the busy owner";
  }
}

TEST(Communicator, SubCommunicatorsAndIsolation) {
  // Split into even and odd ranks; each half reduces on its own.
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, world().rank() % 2, world().rank(), &half);
  {
    const mpiproc::communicator sub{half};
    const int sum = mpiproc::map_reduce(sub, range<int>{0, 10}, [&](int) { return 1; }, std::plus<>{}, schedule::dynamic(1));
    EXPECT_EQ(sum, 10);
    const int ranks_here = mpiproc::map_reduce(sub, range<int>{0, sub.size()}, [](int) { return 1; }, std::plus<>{});
    EXPECT_EQ(ranks_here, (world().size() + 1 - world().rank() % 2) / 2);
  }
  // mpiproc works on a private duplicate: same group, other context.
  int relation = MPI_UNEQUAL;
  MPI_Comm_compare(world().native(), MPI_COMM_WORLD, &relation);
  EXPECT_EQ(relation, MPI_CONGRUENT);
  // A message of the user's on the original communicator is not taken by mpiproc's traffic.
  const int next = (world().rank() + 1) % world().size(), prev = (world().rank() + world().size() - 1) % world().size();
  int token = world().rank() * 10, got = -1;
  MPI_Request request;
  MPI_Irecv(&got, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, &request);
  MPI_Send(&token, 1, MPI_INT, next, 0, MPI_COMM_WORLD);
  EXPECT_EQ(mpiproc::map_reduce(world(), range<int>{0, 1000}, [](int i) { return i; }, std::plus<>{}, schedule::dynamic(3)), 499500);
  MPI_Wait(&request, MPI_STATUS_IGNORE);
  EXPECT_EQ(got, prev * 10);
  MPI_Comm_free(&half);
}

TEST(Communicator, SiblingCommunicatorsShareNoState) {
  // The halves of one MPI_Comm_split get the same context id; Open MPI 4.1's osc/rdma names its
  // shared-memory files by that id, so windows made at once on both halves collided and failed.
  for (int round = 0; round < 30; ++round) {
    MPI_Comm half;
    MPI_Comm_split(MPI_COMM_WORLD, world().rank() % 2, world().rank(), &half);
    {
      const mpiproc::communicator sub{half};
      EXPECT_EQ(mpiproc::map_reduce(sub, range<int>{0, 100}, [](int i) { return i; }, std::plus<>{}, schedule::dynamic(3)), 4950);
    }
    MPI_Comm_free(&half);
  }
}

