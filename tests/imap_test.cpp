// Streaming results (imap, imap_unordered): under every schedule and from every consumer rank,
// each result reaches the consumer exactly once, with its position; imap hands them on in input
// order; errors on any rank reach every rank; the consumer's memory stays within the window.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using mpiproc::range;
using mpiproc::schedule;
using test::describe;
using test::world;

namespace {

std::int64_t f(std::int64_t x) { return x * x - 3 * x + 7; }

/// Checks on `consumer` that `got` holds (position, result) for every position of [0, n) once,
/// result f(first + position), and in position order where `ordered`; elsewhere that it is empty.
void expect_each_once(const std::vector<std::pair<std::int64_t, std::int64_t>>& got, std::int64_t first,
                      std::int64_t n, int consumer, bool ordered, const std::string& what) {
  if (world().rank() != consumer) {
    EXPECT_TRUE(got.empty()) << what << ": consume was called on rank " << world().rank();
    return;
  }
  ASSERT_EQ(static_cast<std::int64_t>(got.size()), n) << what;
  std::vector<char> seen(static_cast<std::size_t>(n));
  for (std::size_t k = 0; k < got.size(); ++k) {
    const auto [at, value] = got[k];
    ASSERT_TRUE(at >= 0 && at < n) << what << ": position " << at;
    ASSERT_FALSE(seen[static_cast<std::size_t>(at)]) << what << ": position " << at << " twice";
    seen[static_cast<std::size_t>(at)] = 1;
    ASSERT_EQ(value, f(first + at)) << what << ": position " << at;
    if (ordered) {
      ASSERT_EQ(at, static_cast<std::int64_t>(k)) << what << ": out of input order";
    }
  }
}

}  // namespace

TEST(ImapUnordered, EveryResultOnceUnderEverySchedule) {
  for (const range<std::int64_t> r : {range<std::int64_t>{0, 0}, {5, 6}, {-40, 3}, {0, 1000}, {17, 4017}})
    for (const schedule& s : test::every_schedule())
      for (int consumer = 0; consumer < world().size(); ++consumer) {
        std::vector<std::pair<std::int64_t, std::int64_t>> got;
        mpiproc::imap_unordered(world(), r, f, [&](std::int64_t at, std::int64_t v) { got.emplace_back(at, v); }, s,
                                consumer);
        expect_each_once(got, r.first(), r.size(), consumer,
                         false, "imap_unordered " + std::to_string(r.size()) + " " + describe(s));
      }
}

TEST(Imap, InputOrderUnderEverySchedule) {
  for (const range<std::int64_t> r : {range<std::int64_t>{0, 0}, {5, 6}, {-40, 3}, {0, 1000}, {17, 4017}})
    for (const schedule& s : test::every_schedule())
      for (int consumer = 0; consumer < world().size(); ++consumer) {
        std::vector<std::pair<std::int64_t, std::int64_t>> got;
        mpiproc::imap(world(), r, f, [&](std::int64_t at, std::int64_t v) { got.emplace_back(at, v); }, s, consumer);
        expect_each_once(got, r.first(), r.size(), consumer, true,
                         "imap " + std::to_string(r.size()) + " " + describe(s));
      }
}

// Many pieces, a rank far slower than the others on some items, and a consumer that takes its
// time: the order holds, nothing is lost, and the results equal map's.
TEST(Imap, OrderHoldsWithASlowRankAndManyPieces) {
  const std::int64_t n = 300000;
  const int last = world().size() - 1;
  const auto slow = [last](std::int64_t x) {
    if (world().rank() == last && x % 50000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    return f(x);
  };
  for (const schedule& s : {schedule::dynamic(), schedule::dynamic(1000), schedule::cyclic(), schedule::guided()}) {
    std::vector<std::int64_t> in_order;
    std::int64_t next = 0;
    bool ordered = true;
    mpiproc::imap(world(), range<std::int64_t>(0, n), slow, [&](std::int64_t at, std::int64_t v) {
      ordered = ordered && at == next++;
      in_order.push_back(v);
      if (at % 100000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }, s);
    const std::vector<std::int64_t> mapped = mpiproc::map(world(), range<std::int64_t>(0, n), f);
    if (world().rank() == 0) {
      EXPECT_TRUE(ordered) << describe(s);
      EXPECT_EQ(in_order, mapped) << describe(s);
    }
  }
}

TEST(ImapUnordered, ConsumeWithTheResultAlone) {
  std::int64_t sum = 0, count = 0;
  mpiproc::imap_unordered(world(), range<std::int64_t>(1, 100001), [](std::int64_t x) { return x; },
                          [&](std::int64_t v) { sum += v, ++count; });
  if (world().rank() == 0) {
    EXPECT_EQ(count, 100000);
    EXPECT_EQ(sum, std::int64_t{100000} * 100001 / 2);
  } else {
    EXPECT_EQ(count, 0);
  }
}

TEST(Imap, SerializedResultsAndItems) {
  for (const schedule& s : test::every_schedule()) {
    const int consumer = world().size() - 1;
    std::vector<std::string> words;
    if (world().rank() == consumer)
      for (int k = 0; k < 2500; ++k) words.push_back("w" + std::to_string(k * 7));
    std::vector<std::string> got;
    std::vector<std::int64_t> positions;
    mpiproc::imap(world(), words, [](const std::string& w) { return w + "!"; },
                  [&](std::int64_t at, std::string v) {
                    positions.push_back(at);
                    got.push_back(std::move(v));
                  },
                  s, consumer);
    std::vector<std::int64_t> lengths;
    mpiproc::imap_unordered(world(), words, [](const std::string& w) { return std::vector<char>(w.begin(), w.end()); },
                            [&](std::int64_t at, std::vector<char> v) { lengths.push_back(at * 1000 + static_cast<std::int64_t>(v.size())); },
                            s, consumer);
    if (world().rank() != consumer) {
      EXPECT_TRUE(got.empty() && lengths.empty());
      continue;
    }
    ASSERT_EQ(got.size(), words.size()) << describe(s);
    for (std::size_t k = 0; k < words.size(); ++k) {
      EXPECT_EQ(positions[k], static_cast<std::int64_t>(k)) << describe(s);
      EXPECT_EQ(got[k], words[k] + "!") << describe(s);
    }
    std::sort(lengths.begin(), lengths.end());
    ASSERT_EQ(lengths.size(), words.size()) << describe(s);
    for (std::size_t k = 0; k < words.size(); ++k)
      EXPECT_EQ(lengths[k], static_cast<std::int64_t>(k) * 1000 + static_cast<std::int64_t>(words[k].size())) << describe(s);
  }
}

// An error in fn on any rank, or in consume on the consumer, reaches every rank as a remote_error
// naming the rank and the message; the next call works.
TEST(Imap, ErrorsReachEveryRankAndTheNextCallWorks) {
  const int last = world().size() - 1;
  for (const bool ordered : {false, true})
    for (const schedule& s : {schedule::dynamic(), schedule::block(), schedule::cyclic(), schedule::guided()}) {
      int thrower = -1;  // the rank that computed item 7777
      const auto fn = [&thrower](std::int64_t x) -> std::int64_t {
        if (x == 7777) {
          thrower = world().rank();
          throw std::runtime_error("bad item " + std::to_string(x));
        }
        return x;
      };
      std::int64_t handed = 0;
      const auto consume = [&](std::int64_t) { ++handed; };
      try {
        if (ordered)
          mpiproc::imap(world(), range<std::int64_t>(0, 20000), fn, consume, s);
        else
          mpiproc::imap_unordered(world(), range<std::int64_t>(0, 20000), fn, consume, s);
        ADD_FAILURE() << "no error, " << describe(s);
      } catch (const mpiproc::remote_error& e) {
        int expected = -1;
        MPI_Allreduce(&thrower, &expected, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        EXPECT_EQ(e.rank(), expected) << describe(s);
        EXPECT_NE(std::string(e.what()).find("bad item 7777"), std::string::npos) << e.what();
      }
      EXPECT_LT(handed, 20000);

      const auto refuse = [](std::int64_t v) {
        if (v == 4321) throw std::runtime_error("consumer refuses 4321");
      };
      try {
        if (ordered)
          mpiproc::imap(world(), range<std::int64_t>(0, 20000), [](std::int64_t x) { return x; }, refuse, s, last);
        else
          mpiproc::imap_unordered(world(), range<std::int64_t>(0, 20000), [](std::int64_t x) { return x; }, refuse, s,
                                  last);
        ADD_FAILURE() << "no error from consume, " << describe(s);
      } catch (const mpiproc::remote_error& e) {
        EXPECT_EQ(e.rank(), last);
        EXPECT_NE(std::string(e.what()).find("consumer refuses 4321"), std::string::npos) << e.what();
      }

      std::int64_t sum = 0;
      mpiproc::imap_unordered(world(), range<std::int64_t>(0, 1000), [](std::int64_t x) { return x; },
                              [&](std::int64_t v) { sum += v; }, s);
      if (world().rank() == 0) {
        EXPECT_EQ(sum, 999 * 1000 / 2);
      }
    }
}

TEST(Imap, RanksThatDisagreeGetUsageErrorNotAHang) {
  const auto id = [](std::int64_t x) { return x; };
  const auto ignore = [](std::int64_t) {};
  if (world().size() > 1) {
    EXPECT_THROW(mpiproc::imap(world(), range<std::int64_t>(0, 100), id, ignore, schedule::dynamic(),
                               world().rank() == 0 ? 0 : 1),
                 mpiproc::usage_error);
    EXPECT_THROW(world().rank() == 0 ? mpiproc::imap(world(), range<std::int64_t>(0, 100), id, ignore)
                                     : mpiproc::imap_unordered(world(), range<std::int64_t>(0, 100), id, ignore),
                 mpiproc::usage_error);
  }
  EXPECT_THROW(mpiproc::imap(world(), range<std::int64_t>(0, 100), id, ignore, schedule::dynamic(), world().size()),
               mpiproc::usage_error);
}

namespace {
/// This process's peak resident memory (VmHWM) in bytes, after resetting it where `reset`; -1
/// where Linux does not tell.
std::int64_t peak_memory(bool reset) {
  if (reset) {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    if (!clear.flush()) return -1;
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}
}  // namespace

// 20 M results of 8 bytes (160 MB) stream through while the consumer's peak memory grows by
// less than 40 MB: the window (5 pieces of at most 1 MiB per rank), not the results.
TEST(ImapUnordered, ConsumerMemoryStaysWithinTheWindow) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer keeps freed memory in quarantine: the peak says nothing here";
#endif
  const std::int64_t n = 20'000'000;
  const std::int64_t before = peak_memory(true);
  if (before < 0) GTEST_SKIP() << "this kernel does not reset the peak resident memory";
  std::int64_t sum = 0, count = 0;
  mpiproc::imap_unordered(world(), range<std::int64_t>(0, n), [](std::int64_t x) { return x; },
                          [&](std::int64_t v) { sum += v, ++count; });
  const std::int64_t grew = peak_memory(false) - before;
  if (world().rank() == 0) {
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    EXPECT_LT(grew, std::int64_t{40} << 20) << "the consumer's peak grew by " << grew << " bytes";
  }
}
