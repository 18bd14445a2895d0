// Whole-job progress and chunk time limits (call_options): the progress callback sees every rank's
// items, never going back, ending at the total, for every schedule and every form of map call and
// across a checkpoint's resume; in a file the display prints a line per tenth; a chunk that runs
// past its time limit fails the call on every rank promptly, naming its rank, and the next call
// works; a limit not reached changes nothing.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using mpiproc::call_options;
using mpiproc::checkpoint;
using mpiproc::chunk_time_limit;
using mpiproc::progress;
using mpiproc::range;
using mpiproc::schedule;
using test::world;

// A call's options: each kind alone or together, in any order; the same kind twice or anything
// else does not compile.
static_assert(std::convertible_to<checkpoint, call_options>);
static_assert(std::convertible_to<progress, call_options>);
static_assert(std::convertible_to<chunk_time_limit, call_options>);
static_assert(std::constructible_from<call_options, chunk_time_limit, checkpoint, progress>);
static_assert(std::constructible_from<call_options, progress, checkpoint>);
static_assert(!std::constructible_from<call_options, checkpoint, checkpoint>);
static_assert(!std::constructible_from<call_options, progress, chunk_time_limit, progress>);
static_assert(!std::constructible_from<call_options, int>);
static_assert(!std::constructible_from<call_options, checkpoint, std::string>);

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<schedule> all_schedules() {
  return {schedule::block(), schedule::cyclic(), schedule::cyclic(3), schedule::dynamic(),
          schedule::dynamic(7), schedule::guided(), schedule::guided(4)};
}

std::string describe(const schedule& s) { return std::string(s.name()) + "(" + std::to_string(s.chunk()) + ")"; }

std::int64_t sum_over_ranks(std::int64_t mine) {
  std::int64_t total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

/// What rank 0's callback received.
struct reports {
  std::vector<std::int64_t> done;
  std::vector<std::int64_t> totals;

  progress watch() {
    return progress{[this](std::int64_t d, std::int64_t total, std::chrono::duration<double>) {
      done.push_back(d);
      totals.push_back(total);
    }};
  }
  /// Never going back, ending at exactly `total` (rank 0); nothing on the other ranks.
  void expect_complete(std::int64_t total, const std::string& what) const {
    if (world().rank() != 0) {
      EXPECT_TRUE(done.empty()) << what;
      return;
    }
    ASSERT_FALSE(done.empty()) << what;
    for (std::size_t k = 1; k < done.size(); ++k) EXPECT_LE(done[k - 1], done[k]) << what << " at report " << k;
    EXPECT_EQ(done.back(), total) << what;
    for (const auto t : totals) EXPECT_EQ(t, total) << what;
  }
};

std::int64_t square(std::int64_t i) { return i * i; }

std::int64_t sum_of_squares(std::int64_t first, std::int64_t last) {
  std::int64_t total = 0;
  for (std::int64_t i = first; i < last; ++i) total += i * i;
  return total;
}

/// Rank 0's stderr goes to a file while one exists; text() gives what was written.
class captured_stderr {
 public:
  captured_stderr() {
    if (world().rank() != 0) return;
    char name[] = "/tmp/mpiproc_progress_XXXXXX";
    const int fd = ::mkstemp(name);
    path_ = name;
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~captured_stderr() { restore(); }
  std::string text() {
    if (saved_ < 0) return {};
    std::fflush(stderr);
    std::stringstream all;
    all << std::ifstream(path_).rdbuf();
    restore();
    return all.str();
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
    fs::remove(path_);
  }
  std::string path_;
  int saved_ = -1;
};

}  // namespace

TEST(CallOptions, AnOptionAloneOrSeveralInAnyOrder) {
  const call_options none;
  EXPECT_FALSE(none.checkpoint);
  EXPECT_FALSE(none.progress.enabled);
  EXPECT_FALSE(none.time_limit);
  EXPECT_FALSE(none.monitored());
  const call_options one = checkpoint{"a.ckpt"};
  EXPECT_EQ(one.checkpoint.path, "a.ckpt");
  EXPECT_FALSE(one.monitored());
  const call_options all = {chunk_time_limit{60s}, checkpoint{"b.ckpt"}, progress{"label"}};
  EXPECT_EQ(all.checkpoint.path, "b.ckpt");
  EXPECT_EQ(all.progress.label, "label");
  EXPECT_EQ(all.time_limit.limit, 60s);
  EXPECT_TRUE(all.monitored());
  EXPECT_FALSE(call_options{progress::off()}.monitored());
}

// Every form of map call with every schedule: the callback sees all ranks' items and ends at the
// total; the results are exact.
TEST(Progress, TheCallbackCountsEveryRanksItemsUpToTheTotal) {
  constexpr std::int64_t n = 3'001;
  const range<std::int64_t> r{5, 5 + n};
  std::vector<std::int64_t> items(n);
  for (std::int64_t k = 0; k < n; ++k) items[static_cast<std::size_t>(k)] = k;
  for (const auto& s : all_schedules()) {
    const std::string what = describe(s);
    {
      reports seen;
      EXPECT_EQ(mpiproc::map_reduce(world(), r, square, std::plus<>{}, s, seen.watch()), sum_of_squares(5, 5 + n)) << what;
      seen.expect_complete(n, "map_reduce " + what);
    }
    {
      reports seen;
      const auto sum = mpiproc::map_reduce_root(world(), 0, r, square, std::plus<>{}, s, seen.watch());
      if (world().rank() == 0) {
        EXPECT_EQ(*sum, sum_of_squares(5, 5 + n)) << what;
      }
      seen.expect_complete(n, "map_reduce_root " + what);
    }
    {
      reports seen;
      auto chunk_sum = [](range<std::int64_t> sub) { return sum_of_squares(sub.first(), sub.last()); };
      EXPECT_EQ(mpiproc::map_reduce_chunks(world(), r, chunk_sum, std::plus<>{}, s, seen.watch()),
                sum_of_squares(5, 5 + n)) << what;
      seen.expect_complete(n, "map_reduce_chunks " + what);
    }
    {
      reports seen;
      const auto squares = mpiproc::map(world(), r, square, s, seen.watch());
      EXPECT_EQ(squares.size(), static_cast<std::size_t>(n)) << what;
      EXPECT_EQ(squares.empty() ? 0 : squares.back(), square(4 + n)) << what;
      seen.expect_complete(n, "map " + what);
    }
    {
      reports seen;
      const auto squares = mpiproc::map_root(world(), 0, items, square, s, seen.watch());
      if (world().rank() == 0) {
        EXPECT_EQ(squares.size(), static_cast<std::size_t>(n)) << what;
      }
      seen.expect_complete(n, "map_root of items " + what);
    }
    {
      reports seen;
      EXPECT_EQ(mpiproc::map_reduce(world(), items, square, std::plus<>{}, s, seen.watch()), sum_of_squares(0, n)) << what;
      seen.expect_complete(n, "map_reduce of items " + what);
    }
    {
      reports seen;
      std::int64_t visited = 0;
      mpiproc::for_each(world(), r, [&](std::int64_t) { ++visited; }, s, seen.watch());
      EXPECT_EQ(sum_over_ranks(visited), n) << what;
      seen.expect_complete(n, "for_each " + what);
    }
    {
      reports seen;
      std::int64_t visited = 0;
      mpiproc::for_each_chunks(world(), r, [&](range<std::int64_t> sub) { visited += sub.size(); }, s, seen.watch());
      EXPECT_EQ(sum_over_ranks(visited), n) << what;
      seen.expect_complete(n, "for_each_chunks " + what);
    }
    {
      reports seen;
      std::int64_t visited = 0;
      mpiproc::for_each(world(), items, [&](std::int64_t) { ++visited; }, s, seen.watch());
      EXPECT_EQ(sum_over_ranks(visited), n) << what;
      seen.expect_complete(n, "for_each of items " + what);
    }
  }
}

// Slow items: rank 0 reports counts on the way, not only the total at the end, and they include
// the other ranks' (a block schedule's one chunk per rank is done in slices).
TEST(Progress, ASlowCallReportsOnTheWay) {
  for (const auto& s : {schedule::block(), schedule::dynamic()}) {
    const std::int64_t n = 150 * world().size();
    reports seen;
    mpiproc::for_each(world(), range<std::int64_t>{0, n}, [](std::int64_t) { std::this_thread::sleep_for(2ms); }, s,
                      seen.watch());
    seen.expect_complete(n, describe(s));
    if (world().rank() == 0) {
      std::int64_t between = 0;
      for (const auto d : seen.done) between += d > 0 && d < n;
      EXPECT_GE(between, 3) << describe(s);
      if (world().size() > 1 && seen.done.size() > 1) {  // another rank's items show before the end
        EXPECT_GT(seen.done[seen.done.size() - 2], n / world().size()) << describe(s);
      }
    }
  }
}

// A resumed call counts what the checkpoint held as done: the counts start at least there.
TEST(Progress, AResumedCallCountsTheCheckpointsItemsAsDone) {
  for (const auto& s : all_schedules()) {
    std::string folder;
    if (world().rank() == 0) {
      char name[] = "/tmp/mpiproc_progress_ckpt_XXXXXX";
      folder = ::mkdtemp(name);
    }
    unsigned long length = folder.size();
    MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
    folder.resize(length);
    MPI_Bcast(folder.data(), static_cast<int>(length), MPI_CHAR, 0, MPI_COMM_WORLD);
    const checkpoint cp{fs::path(folder) / "sum.ckpt", "squares", 0ms};
    constexpr std::int64_t n = 10'007;
    const range<std::int64_t> r{0, n};
    std::int64_t completed = 0;
    auto chunk_sum = [&](bool fail) {
      return [&completed, fail](range<std::int64_t> sub) {
        if (fail && sub.first() <= 6'000 && 6'000 < sub.last()) throw std::runtime_error("stopped at 6000");
        completed += sub.size();
        return sum_of_squares(sub.first(), sub.last());
      };
    };
    reports first, second;
    EXPECT_THROW(mpiproc::map_reduce_chunks(world(), r, chunk_sum(true), std::plus<>{}, s, {cp, first.watch()}),
                 mpiproc::remote_error);
    const std::int64_t saved = sum_over_ranks(completed);
    EXPECT_EQ(mpiproc::map_reduce_chunks(world(), r, chunk_sum(false), std::plus<>{}, s, {second.watch(), cp}),
              sum_of_squares(0, n)) << describe(s);
    second.expect_complete(n, describe(s));
    // Items of a piece that failed partway were computed, not saved: a piece is at most
    // ceil(n / (32 ranks)) items.
    const std::int64_t piece = (n + 32 * world().size() - 1) / (32 * world().size());
    if (world().rank() == 0 && !second.done.empty()) {
      EXPECT_GE(second.done.front(), saved - piece) << describe(s);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world().rank() == 0) fs::remove_all(folder);
  }
}

// stderr in a file (a Slurm log): a line per tenth, each saying how far, and 100 % at the end.
TEST(Progress, InAFileALinePerTenthAndOneAt100Percent) {
  for (const auto& s : {schedule::block(), schedule::guided()}) {
    const std::int64_t n = 200 * world().size();
    captured_stderr log;
    mpiproc::for_each(world(), range<std::int64_t>{0, n}, [](std::int64_t) { std::this_thread::sleep_for(3ms); }, s,
                      progress{"sleepy"});
    const std::string text = log.text();
    if (world().rank() != 0) continue;
    const std::regex line("sleepy: ([0-9]+)% \\(([0-9]+)/([0-9]+) items\\) in [0-9.]+ s, [0-9.k]+ items/s(, about [0-9.]+ s left)?");
    std::vector<int> percents;
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);) {
      std::smatch m;
      if (!std::regex_match(l, m, line)) {
        ADD_FAILURE() << "unexpected line: " << l;
        continue;
      }
      percents.push_back(std::stoi(m[1]));
      EXPECT_EQ(std::stoll(m[3]), n);
      EXPECT_EQ(m[4].matched, percents.back() != 100) << l;  // time left on the way, not at the end
    }
    EXPECT_GE(percents.size(), 4u) << text;
    if (percents.empty()) continue;
    EXPECT_EQ(percents.back(), 100) << text;
    for (std::size_t k = 1; k < percents.size(); ++k) EXPECT_GE(percents[k] / 10, percents[k - 1] / 10 + 1) << text;
    EXPECT_GE(percents.front(), 10) << text;
  }
}

// quiet_for: a call shorter than it prints nothing at all.
TEST(Progress, AQuickCallPrintsNothingWithQuietFor) {
  progress quiet{"quick"};
  quiet.quiet_for = 5s;
  captured_stderr log;
  EXPECT_EQ(mpiproc::map_reduce(world(), range<std::int64_t>{0, 1000}, square, std::plus<>{}, schedule::dynamic(), quiet),
            sum_of_squares(0, 1000));
  EXPECT_EQ(log.text(), "");
}

// Ranks that disagree on progress get usage_error (not a hang), and the next call works.
TEST(Progress, RanksThatDisagreeGetUsageError) {
  if (world().size() == 1) GTEST_SKIP() << "needs 2 ranks";
  for (const int with : {0, world().size() - 1}) {
    const call_options opts = world().rank() == with ? call_options{progress{"only here"}} : call_options{};
    captured_stderr log;
    EXPECT_THROW(mpiproc::map_reduce(world(), range<std::int64_t>{0, 100}, square, std::plus<>{}, schedule::block(), opts),
                 mpiproc::usage_error);
    reports seen;
    EXPECT_EQ(mpiproc::map_reduce(world(), range<std::int64_t>{0, 100}, square, std::plus<>{}, schedule::block(), seen.watch()),
              sum_of_squares(0, 100));
    seen.expect_complete(100, "after a disagreement");
  }
}

// The chunk forms' functions get the scheduled chunks whole with progress or a limit too, so their
// boundaries never depend on timing (element forms are cut into slices).
TEST(Progress, ChunkFormsGetTheScheduledChunksWhole) {
  constexpr std::int64_t n = 10'000;
  for (const auto& s : {schedule::dynamic(100), schedule::cyclic(100)}) {
    std::vector<std::int64_t> sizes;
    reports seen;
    const auto sum = mpiproc::map_reduce_chunks(
        world(), range<std::int64_t>{0, n},
        [&](range<std::int64_t> sub) {
          sizes.push_back(sub.size());
          std::int64_t total = 0;
          for (const auto i : sub) total += i;
          return total;
        },
        std::plus<>{}, s, seen.watch());
    EXPECT_EQ(sum, n * (n - 1) / 2) << describe(s);
    seen.expect_complete(n, "map_reduce_chunks " + describe(s));
    std::vector<std::int64_t> visited;
    mpiproc::for_each_chunks(world(), range<std::int64_t>{0, n}, [&](range<std::int64_t> sub) { visited.push_back(sub.size()); },
                            s, {progress::off(), chunk_time_limit{30s}});
    // One rank runs a dynamic schedule as block: its one chunk is the whole range.
    const std::int64_t chunk = world().size() == 1 && s.type() == schedule::kind::dynamic ? n : 100;
    for (const auto size : sizes) EXPECT_EQ(size, chunk) << describe(s);
    for (const auto size : visited) EXPECT_EQ(size, chunk) << describe(s);
  }
}

// The user's callback throwing while the ranks work fails the call on every rank with its message,
// naming rank 0; the communicator goes on. (Static schedules, so that rank 0 surely works: under a
// dynamic one the others may take every chunk first, and the callback then runs only at the end,
// where its error is reported instead.)
TEST(Progress, ACallbackThatThrowsFailsTheCallOnEveryRank) {
  const progress throwing{[](std::int64_t, std::int64_t, std::chrono::duration<double>) {
    throw std::runtime_error("the display broke");
  }};
  for (const auto& s : {schedule::block(), schedule::cyclic()}) {
    try {
      mpiproc::map_reduce(world(), range<std::int64_t>{0, 100'000}, square, std::plus<>{}, s, throwing);
      ADD_FAILURE() << describe(s) << ": no error";
    } catch (const mpiproc::remote_error& e) {
      EXPECT_EQ(e.rank(), 0) << e.what();
      EXPECT_NE(std::string(e.what()).find("the display broke"), std::string::npos) << e.what();
    }
    EXPECT_EQ(mpiproc::map_reduce(world(), range<std::int64_t>{0, 1000}, square, std::plus<>{}, s),
              sum_of_squares(0, 1000));
  }
}

TEST(ChunkTimeLimit, ALimitNotReachedChangesNothing) {
  for (const auto& s : all_schedules()) {
    EXPECT_EQ(mpiproc::map_reduce(world(), range<std::int64_t>{0, 5'000}, square, std::plus<>{}, s, chunk_time_limit{30s}),
              sum_of_squares(0, 5'000)) << describe(s);
    std::int64_t visited = 0;
    mpiproc::for_each_chunks(world(), range<std::int64_t>{0, 5'000}, [&](range<std::int64_t> sub) { visited += sub.size(); },
                            s, {progress::off(), chunk_time_limit{30s}});
    EXPECT_EQ(sum_over_ranks(visited), 5'000) << describe(s);
  }
}

// One item sleeps well past the limit (and then returns, within the grace period): every rank
// throws remote_error naming the rank that ran it, the others long before it returns; the next
// call on the communicator works.
TEST(ChunkTimeLimit, AChunkPastTheLimitFailsTheCallOnEveryRankNamingItsRank) {
  constexpr auto limit = 300ms;
  constexpr auto sleep = 1500ms;
  for (const auto& s : {schedule::block(), schedule::cyclic(), schedule::dynamic(), schedule::guided()}) {
    for (const bool chunk_form : {false, true}) {
      const std::string what = describe(s) + (chunk_form ? " chunk form" : " element form");
      constexpr std::int64_t n = 400, stuck = 277;
      int ran_stuck = -1;
      auto item = [&](std::int64_t i) {
        if (i == stuck) {
          ran_stuck = world().rank();
          std::this_thread::sleep_for(sleep);
        }
        return i;
      };
      const auto start = std::chrono::steady_clock::now();
      double failed_after = -1;
      std::string message;
      int named = -2;
      try {
        if (chunk_form)
          mpiproc::map_reduce_chunks(
              world(), range<std::int64_t>{0, n},
              [&](range<std::int64_t> sub) {
                std::int64_t total = 0;
                for (const auto i : sub) total += item(i);
                return total;
              },
              std::plus<>{}, s, chunk_time_limit{limit, 30s});
        else
          mpiproc::map_reduce(world(), range<std::int64_t>{0, n}, item, std::plus<>{}, s, chunk_time_limit{limit, 30s});
        ADD_FAILURE() << what << ": no error";
      } catch (const mpiproc::remote_error& e) {
        failed_after = test::seconds_since(start);
        named = e.rank();
        message = e.what();
      }
      int stuck_rank = -1;
      MPI_Allreduce(&ran_stuck, &stuck_rank, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      EXPECT_EQ(named, stuck_rank) << what << ": " << message;
      EXPECT_NE(message.find("chunk_time_limit of 0.3 s"), std::string::npos) << what << ": " << message;
      EXPECT_NE(message.find("positions "), std::string::npos) << what << ": " << message;
      if (world().rank() != stuck_rank) {
        EXPECT_LT(failed_after, 1.2) << what << " (rank " << world().rank() << ")";
      }
      // The communicator goes on as after any failed call.
      reports seen;
      EXPECT_EQ(mpiproc::map_reduce(world(), range<std::int64_t>{0, 1000}, square, std::plus<>{}, s,
                                    {seen.watch(), chunk_time_limit{limit}}),
                sum_of_squares(0, 1000)) << what;
      seen.expect_complete(1000, what + ", the next call");
    }
  }
}
