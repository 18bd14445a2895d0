// range and schedule: sizes, limits, and the usage errors for bad input.
#include <mpiproc/error.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/schedule.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

using mpiproc::range;
using mpiproc::schedule;
using mpiproc::usage_error;

namespace {
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();
constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto u64_max = std::numeric_limits<std::uint64_t>::max();
}  // namespace

TEST(Range, SizeAndItems) {
  const range<std::int64_t> r{-3, 4};
  EXPECT_EQ(r.size(), 7);
  EXPECT_FALSE(r.empty());
  std::vector<std::int64_t> items(r.begin(), r.end());
  EXPECT_EQ(items, (std::vector<std::int64_t>{-3, -2, -1, 0, 1, 2, 3}));
  EXPECT_EQ(r.at_offset(3), 0);
  EXPECT_EQ(r.subrange(2, 3), (range<std::int64_t>{-1, 2}));
}

TEST(Range, EmptyRanges) {
  EXPECT_TRUE((range<int>{}).empty());
  EXPECT_EQ((range<int>{5, 5}).size(), 0);
  EXPECT_EQ((range<std::uint64_t>{u64_max, u64_max}).size(), 0);
}

TEST(Range, LimitsOfSixtyFourBits) {
  EXPECT_EQ((range<std::int64_t>{i64_max - 10, i64_max}).size(), 10);
  EXPECT_EQ((range<std::int64_t>{i64_min, i64_min + 10}).size(), 10);
  EXPECT_EQ((range<std::uint64_t>{u64_max - 5, u64_max}).size(), 5);
  // The largest allowed size: 2^63 - 1 items.
  EXPECT_EQ((range<std::int64_t>{i64_min, -1}).size(), i64_max);
  EXPECT_EQ((range<std::uint64_t>{1, std::uint64_t{1} << 63}).size(), i64_max);
  EXPECT_EQ((range<std::int64_t>{-5, 5}).at_offset(10), 5);
}

TEST(Range, ReversedRangeIsAUsageError) {
  EXPECT_THROW((range<int>{3, 2}), usage_error);
  EXPECT_THROW((range<std::uint64_t>{10, 0}), usage_error);
  try {
    range<long>{7, 3};
    FAIL() << "no exception";
  } catch (const usage_error& e) {
    EXPECT_NE(std::string(e.what()).find("below first"), std::string::npos) << e.what();
  }
}

TEST(Range, SizeThatOverflowsIsAUsageError) {
  EXPECT_THROW((range<std::int64_t>{i64_min, i64_max}), usage_error);
  EXPECT_THROW((range<std::int64_t>{-1, i64_max}), usage_error);
  EXPECT_THROW((range<std::uint64_t>{0, u64_max}), usage_error);
  EXPECT_THROW((range<std::uint64_t>{0, std::uint64_t{1} << 63}), usage_error);
  EXPECT_NO_THROW((range<std::int64_t>{0, i64_max}));
}

TEST(Schedule, ChunkSizeBelowOneIsAUsageError) {
  EXPECT_THROW(schedule::cyclic(0), usage_error);
  EXPECT_THROW(schedule::dynamic(0), usage_error);
  EXPECT_THROW(schedule::guided(0), usage_error);
  EXPECT_THROW(schedule::dynamic(-4), usage_error);
  EXPECT_EQ(schedule::dynamic(5).chunk(), 5);
  EXPECT_EQ(schedule::dynamic().chunk(), 0);
}

TEST(Schedule, Names) {
  EXPECT_EQ(schedule{}.type(), schedule::kind::block);
  for (const char* name : {"block", "cyclic", "dynamic", "guided"}) EXPECT_STREQ(schedule::from_name(name).name(), name);
  EXPECT_THROW(schedule::from_name("static"), usage_error);
}
