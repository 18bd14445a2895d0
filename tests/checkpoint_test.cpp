// Checkpoints: a call stopped partway (a function that throws, a signal) and run again, at the same
// or another rank count, returns exactly an uninterrupted run's answer and computes only the
// positions the first run did not complete; another call's file is refused; a corrupted or
// truncated file is detected and never used.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <boost/serialization/vector.hpp>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

using mpiproc::range;
using mpiproc::schedule;
using test::describe;
using test::sum_over_ranks;
using test::world;

namespace {

namespace fs = std::filesystem;

std::vector<schedule> all_schedules() {
  return {schedule::block(),    schedule::cyclic(), schedule::cyclic(3), schedule::dynamic(),
          schedule::dynamic(7), schedule::guided(), schedule::guided(4)};
}

/// A fresh folder, the same on every rank, removed at the end of the test.
class scratch {
 public:
  scratch() {
    std::string path;
    if (world().rank() == 0) {
      char name[] = "/tmp/mpiproc_checkpoint_XXXXXX";
      path = ::mkdtemp(name);
    }
    unsigned long length = path.size();
    MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
    path.resize(length);
    MPI_Bcast(path.data(), static_cast<int>(length), MPI_CHAR, 0, MPI_COMM_WORLD);
    folder_ = path;
  }
  ~scratch() {
    MPI_Barrier(MPI_COMM_WORLD);
    if (world().rank() == 0) fs::remove_all(folder_);
  }
  fs::path file(const std::string& name) const { return folder_ / name; }
  /// The files in the folder (on rank 0; empty elsewhere).
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    if (world().rank() == 0)
      for (const auto& entry : fs::directory_iterator(folder_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path folder_;
};

/// Changes rank 0's copy of `file` (then every rank goes on).
void on_rank0(const std::function<void()>& change) {
  MPI_Barrier(MPI_COMM_WORLD);
  if (world().rank() == 0) change();
  MPI_Barrier(MPI_COMM_WORLD);
}

constexpr std::int64_t n = 10'007;  // a prime: remainders everywhere
constexpr std::int64_t fail_at = 6'000;

std::int64_t exact_sum_of_squares() {
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < n; ++i) total += i * i;
  return total;
}

/// A cyclic(1) chunk is strided, so the function gets one item at a time: the items of the piece
/// that threw were computed before it threw, and are computed again (a piece is at most
/// ceil(n / (32 ranks)) items). Every other schedule hands the function whole pieces.
std::int64_t recomputed_at_most(const schedule& s) {
  const std::int64_t piece = (n + 32 * world().size() - 1) / (32 * world().size());
  return s.type() == schedule::kind::cyclic && s.chunk() == 1 ? piece : 0;
}

/// The second run computed exactly what the first did not complete.
void expect_only_the_rest(std::int64_t first, std::int64_t second, const schedule& s) {
  EXPECT_GE(first + second, n) << describe(s);
  EXPECT_LE(first + second, n + recomputed_at_most(s))
      << describe(s) << ": the second run computed " << second << ", the first " << first;
}

}  // namespace

// The chunk form counts exactly what completed: a chunk that throws computes nothing, so the
// second run must compute exactly the items the first run's completed chunks did not.
TEST(Checkpoint, ARerunComputesExactlyTheChunksLeftAndGivesTheExactResult) {
  for (const auto& s : all_schedules()) {
    const scratch dir;
    const mpiproc::checkpoint cp{dir.file("squares.ckpt"), "squares v1", std::chrono::milliseconds(0)};
    const range<std::int64_t> r{0, n};
    std::int64_t done = 0;
    auto sum_chunk = [&](bool fail) {
      return [&done, fail](range<std::int64_t> sub) {
        if (fail && sub.first() <= fail_at && fail_at < sub.last()) throw std::runtime_error("stopped at 6000");
        std::int64_t total = 0;
        for (const auto i : sub) total += i * i;
        done += sub.size();
        return total;
      };
    };
    EXPECT_THROW(mpiproc::map_reduce_chunks(world(), r, sum_chunk(true), std::plus<>{}, s, cp), mpiproc::remote_error)
        << describe(s);
    const std::int64_t first = sum_over_ranks(done);
    done = 0;
    EXPECT_EQ(mpiproc::map_reduce_chunks(world(), r, sum_chunk(false), std::plus<>{}, s, cp), exact_sum_of_squares())
        << describe(s);
    const std::int64_t second = sum_over_ranks(done);
    EXPECT_LT(first, n) << describe(s);
    expect_only_the_rest(first, second, s);
    // Complete: the file holds the answer, a third run computes nothing, no rank file is left.
    done = 0;
    EXPECT_EQ(mpiproc::map_reduce_chunks(world(), r, sum_chunk(false), std::plus<>{}, s, cp), exact_sum_of_squares());
    EXPECT_EQ(sum_over_ranks(done), 0) << describe(s);
    if (world().rank() == 0) {
      EXPECT_EQ(dir.listing(), std::vector<std::string>{"squares.ckpt"}) << describe(s);
      EXPECT_EQ(fs::status(cp.path).permissions() & ~fs::perms(0644), fs::perms::none);  // 0644 at most
    }
  }
}

TEST(Checkpoint, ElementFormsResumeExactly) {
  for (const auto& s : all_schedules()) {
    const scratch dir;
    const range<std::int64_t> r{-3, n - 3};
    std::int64_t calls = 0;
    auto triple = [&](bool fail) {
      return [&calls, fail](std::int64_t i) {
        if (fail && i == fail_at) throw std::runtime_error("stopped");
        ++calls;
        return 3 * i;
      };
    };
    // map_reduce
    const mpiproc::checkpoint sum_cp{dir.file("sum"), "", std::chrono::milliseconds(0)};
    EXPECT_THROW(mpiproc::map_reduce(world(), r, triple(true), std::plus<>{}, s, sum_cp), mpiproc::remote_error);
    const std::int64_t first = sum_over_ranks(calls);
    calls = 0;
    std::int64_t expected = 0;
    for (const auto i : r) expected += 3 * i;
    EXPECT_EQ(mpiproc::map_reduce(world(), r, triple(false), std::plus<>{}, s, sum_cp), expected) << describe(s);
    const std::int64_t second = sum_over_ranks(calls);
    EXPECT_LT(second, n) << describe(s);
    EXPECT_GE(first + second, n) << describe(s);

    // map, in input order, on every rank and on a root
    std::vector<std::int64_t> tripled;
    for (const auto i : r) tripled.push_back(3 * i);
    const mpiproc::checkpoint map_cp{dir.file("map"), "", std::chrono::milliseconds(0)};
    EXPECT_THROW(mpiproc::map(world(), r, triple(true), s, map_cp), mpiproc::remote_error);
    calls = 0;
    EXPECT_EQ(mpiproc::map(world(), r, triple(false), s, map_cp), tripled) << describe(s);
    EXPECT_LT(sum_over_ranks(calls), n) << describe(s);
    calls = 0;
    EXPECT_EQ(mpiproc::map(world(), r, triple(false), s, map_cp), tripled) << describe(s);
    EXPECT_EQ(sum_over_ranks(calls), 0);

    const int root = world().size() - 1;
    const mpiproc::checkpoint root_cp{dir.file("map_root"), "", std::chrono::milliseconds(0)};
    EXPECT_THROW(mpiproc::map_root(world(), root, r, triple(true), s, root_cp), mpiproc::remote_error);
    const auto on_root = mpiproc::map_root(world(), root, r, triple(false), s, root_cp);
    if (world().rank() == root) {
      EXPECT_EQ(on_root, tripled) << describe(s);
    } else {
      EXPECT_TRUE(on_root.empty());
    }
  }
}

TEST(Checkpoint, ForEachVisitsEveryItemOnceOverBothRuns) {
  for (const auto& s : all_schedules()) {
    const scratch dir;
    const mpiproc::checkpoint cp{dir.file("visits"), "", std::chrono::milliseconds(0)};
    std::vector<std::int64_t> completed;
    auto visit = [&](bool fail) {
      return [&completed, fail](range<std::int64_t> sub) {
        if (fail && sub.first() <= fail_at && fail_at < sub.last()) throw std::runtime_error("stopped");
        for (const auto i : sub) completed.push_back(i);
      };
    };
    EXPECT_THROW(mpiproc::for_each_chunks(world(), range<std::int64_t>{0, n}, visit(true), s, cp),
                 mpiproc::remote_error);
    mpiproc::for_each_chunks(world(), range<std::int64_t>{0, n}, visit(false), s, cp);
    std::vector<std::int64_t> all = test::all_gather(completed);
    std::sort(all.begin(), all.end());
    std::vector<std::int64_t> expected(static_cast<std::size_t>(n));
    std::iota(expected.begin(), expected.end(), 0);
    if (recomputed_at_most(s) == 0) {
      EXPECT_EQ(all, expected) << describe(s);
    } else {
      EXPECT_LE(all.size(), expected.size() + static_cast<std::size_t>(recomputed_at_most(s))) << describe(s);
      all.erase(std::unique(all.begin(), all.end()), all.end());
      EXPECT_EQ(all, expected) << describe(s);
    }
  }
}

// Non-trivial types go through Boost.Serialization: a map of strings, a histogram reduction.
TEST(Checkpoint, SerializedResultsResume) {
  const scratch dir;
  const range<int> r{0, 500};
  auto name = [](bool fail) {
    return [fail](int i) {
      if (fail && i == 321) throw std::runtime_error("stopped");
      return std::string(static_cast<std::size_t>(i % 7), 'x') + std::to_string(i);
    };
  };
  const mpiproc::checkpoint cp{dir.file("names"), "", std::chrono::milliseconds(0)};
  EXPECT_THROW(mpiproc::map(world(), r, name(true), schedule::dynamic(9), cp), mpiproc::remote_error);
  std::vector<std::string> expected;
  for (int i = 0; i < 500; ++i) expected.push_back(name(false)(i));
  EXPECT_EQ(mpiproc::map(world(), r, name(false), schedule::dynamic(9), cp), expected);

  using histogram = std::vector<std::int64_t>;
  const mpiproc::reduction add{[](histogram a, const histogram& b) {
                                 for (std::size_t k = 0; k < a.size(); ++k) a[k] += b[k];
                                 return a;
                               },
                               histogram(10, 0)};
  auto bucket = [](bool fail) {
    return [fail](int i) {
      if (fail && i == 400) throw std::runtime_error("stopped");
      histogram h(10, 0);
      h[static_cast<std::size_t>(i % 10)] = i;
      return h;
    };
  };
  const mpiproc::checkpoint hist_cp{dir.file("hist"), "", std::chrono::milliseconds(0)};
  EXPECT_THROW(mpiproc::map_reduce(world(), r, bucket(true), add, schedule::guided(), hist_cp), mpiproc::remote_error);
  histogram sums(10, 0);
  for (int i = 0; i < 500; ++i) sums[static_cast<std::size_t>(i % 10)] += i;
  EXPECT_EQ(mpiproc::map_reduce(world(), r, bucket(false), add, schedule::guided(), hist_cp), sums);
}

// Work keyed by positions, not ranks: the first run on fewer ranks (a sub-communicator), the rerun
// on all of them, and the other way round.
TEST(Checkpoint, ARerunOnAnotherRankCountResumes) {
  for (const bool fewer_first : {true, false})
    for (const auto& s : all_schedules()) {
      const scratch dir;
      const mpiproc::checkpoint cp{dir.file("ranks"), "", std::chrono::milliseconds(0)};
      MPI_Comm part = MPI_COMM_NULL;
      const int keep = std::max(1, world().size() - 1);
      MPI_Comm_split(MPI_COMM_WORLD, world().rank() < keep ? 0 : MPI_UNDEFINED, world().rank(), &part);
      std::int64_t done = 0;
      auto sum_chunk = [&](bool fail) {
        return [&done, fail](range<std::int64_t> sub) {
          if (fail && sub.first() <= fail_at && fail_at < sub.last()) throw std::runtime_error("stopped");
          std::int64_t total = 0;
          for (const auto i : sub) total += i * i;
          done += sub.size();
          return total;
        };
      };
      const range<std::int64_t> r{0, n};
      auto run = [&](bool fail, bool on_part) -> std::int64_t {
        if (!on_part) return mpiproc::map_reduce_chunks(world(), r, sum_chunk(fail), std::plus<>{}, s, cp);
        if (part == MPI_COMM_NULL) return -1;
        const mpiproc::communicator few{part};
        return mpiproc::map_reduce_chunks(few, r, sum_chunk(fail), std::plus<>{}, s, cp);
      };
      if (!fewer_first || part != MPI_COMM_NULL) {
        EXPECT_THROW(run(true, fewer_first), mpiproc::remote_error) << describe(s);
      }
      const std::int64_t first = sum_over_ranks(done);
      done = 0;
      const std::int64_t result = run(false, !fewer_first);
      if (result != -1) {
        EXPECT_EQ(result, exact_sum_of_squares()) << describe(s);
      }
      expect_only_the_rest(first, sum_over_ranks(done), s);
      if (part != MPI_COMM_NULL) MPI_Comm_free(&part);
    }
}

// SIGUSR1 (or SIGTERM) during the call: the chunk in hand finishes, every rank throws interrupted,
// and the rerun completes the rest.
TEST(Checkpoint, ASignalInterruptsEveryRankAndTheRerunFinishes) {
  for (const auto& s : {schedule::block(), schedule::dynamic(50), schedule::cyclic(20)}) {
    const scratch dir;
    const mpiproc::checkpoint cp{dir.file("signal"), "", std::chrono::seconds(60)};
    std::int64_t done = 0;
    auto sum_chunk = [&](bool signal) {
      return [&done, signal](range<std::int64_t> sub) {
        // Every rank is signalled, as mpirun and Slurm signal every rank.
        if (signal && done == 0) std::raise(SIGUSR1);
        std::int64_t total = 0;
        for (const auto i : sub) total += i * i;
        done += sub.size();
        return total;
      };
    };
    const range<std::int64_t> r{0, n};
    EXPECT_THROW(mpiproc::map_reduce_chunks(world(), r, sum_chunk(true), std::plus<>{}, s, cp), mpiproc::interrupted)
        << describe(s);
    const std::int64_t first = sum_over_ranks(done);
    EXPECT_GT(first, 0);
    EXPECT_LT(first, n) << describe(s);
    done = 0;
    EXPECT_EQ(mpiproc::map_reduce_chunks(world(), r, sum_chunk(false), std::plus<>{}, s, cp), exact_sum_of_squares());
    expect_only_the_rest(first, sum_over_ranks(done), s);
  }
  // Outside checkpointed calls the usual handler is back.
  struct sigaction now {};
  sigaction(SIGUSR1, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

TEST(Checkpoint, AnotherCallsFileIsRefused) {
  const scratch dir;
  const auto path = dir.file("refuse");
  auto square = [](std::int64_t i) { return i * i; };
  mpiproc::map_reduce(world(), range<std::int64_t>{0, 100}, square, std::plus<>{}, schedule::dynamic(),
                      mpiproc::checkpoint{path, "v1"});
  auto expect_refused = [&](const std::function<void()>& call, const char* field) {
    try {
      call();
      ADD_FAILURE() << "a checkpoint with another " << field << " was used";
    } catch (const mpiproc::usage_error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("its ") + field), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("another call"), std::string::npos) << e.what();
    }
  };
  expect_refused(
      [&] {
        mpiproc::map_reduce(world(), range<std::int64_t>{0, 100}, square, std::plus<>{}, schedule::dynamic(),
                            mpiproc::checkpoint{path, "v2"});
      },
      "tag");
  expect_refused(
      [&] {
        mpiproc::map_reduce(world(), range<std::int64_t>{0, 101}, square, std::plus<>{}, schedule::dynamic(),
                            mpiproc::checkpoint{path, "v1"});
      },
      "range");
  expect_refused(
      [&] {
        mpiproc::map_reduce(world(), range<std::int64_t>{0, 100}, square, std::plus<>{}, schedule::block(),
                            mpiproc::checkpoint{path, "v1"});
      },
      "schedule");
  expect_refused(
      [&] {
        mpiproc::map_reduce(
            world(), range<std::int64_t>{0, 100}, [](std::int64_t i) { return double(i); }, std::plus<>{},
            schedule::dynamic(), mpiproc::checkpoint{path, "v1"});
      },
      "result type");
  expect_refused(
      [&] {
        mpiproc::map(world(), range<std::int64_t>{0, 100}, square, schedule::dynamic(),
                     mpiproc::checkpoint{path, "v1"});
      },
      "call");
  // The file is untouched: the right call still finds its answer.
  std::int64_t calls = 0;
  EXPECT_EQ(mpiproc::map_reduce(
                world(), range<std::int64_t>{0, 100},
                [&](std::int64_t i) {
                  ++calls;
                  return i * i;
                },
                std::plus<>{}, schedule::dynamic(), mpiproc::checkpoint{path, "v1"}),
            328350);
  EXPECT_EQ(sum_over_ranks(calls), 0);
}

TEST(Checkpoint, ACorruptedOrTruncatedFileIsNeverUsed) {
  const scratch dir;
  const auto path = dir.file("damaged");
  const range<std::int64_t> r{0, 1000};
  auto square = [](std::int64_t i) { return i * i; };
  const mpiproc::checkpoint cp{path, "t"};
  const std::int64_t answer = mpiproc::map_reduce(world(), r, square, std::plus<>{}, schedule::guided(), cp);
  std::string good;
  on_rank0([&] {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  });
  auto expect_detected = [&](const std::string& damaged, const char* why) {
    on_rank0([&] { std::ofstream(path, std::ios::binary | std::ios::trunc) << damaged; });
    try {
      mpiproc::map_reduce(world(), r, square, std::plus<>{}, schedule::guided(), cp);
      ADD_FAILURE() << "a " << why << " checkpoint was used";
    } catch (const mpiproc::remote_error& e) {
      EXPECT_EQ(e.rank(), 0);
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  std::vector<std::size_t> places{30, 60};  // in the body's names and fields
  unsigned long size = good.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
  places.push_back(size - 10);  // in the payload
  for (const std::size_t at : places) {
    std::string flipped = good;
    if (!flipped.empty()) flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    expect_detected(flipped, "checksum");
  }
  expect_detected(good.substr(0, good.size() / 2), "truncated");
  expect_detected(good + "x", "truncated or extended");
  // Deleting it starts over.
  on_rank0([&] { fs::remove(path); });
  EXPECT_EQ(mpiproc::map_reduce(world(), r, square, std::plus<>{}, schedule::guided(), cp), answer);
}

TEST(Checkpoint, LeftoverTemporaryFilesAreIgnored) {
  const scratch dir;
  const auto path = dir.file("tmp");
  on_rank0([&] { std::ofstream(path.string() + ".part-1-0.tmp") << "half written"; });
  EXPECT_EQ(mpiproc::map_reduce(
                world(), range<int>{0, 100}, [](int i) { return i; }, std::plus<>{}, schedule::block(),
                mpiproc::checkpoint{path}),
            4950);
  if (world().rank() == 0) {
    EXPECT_EQ(dir.listing(), std::vector<std::string>{"tmp"});
  }
}

// Items given on rank 0 are known by their positions; the results come back on a root other
// than rank 0 (rank 0 still writes the whole answer).
TEST(Checkpoint, ItemsAndRootFormsResume) {
  const scratch dir;
  std::vector<std::string> words;
  for (int i = 0; i < 300; ++i) words.push_back("w" + std::to_string(i));
  std::int64_t calls = 0;
  auto length = [&](bool fail) {
    return [&calls, fail](const std::string& w) {
      if (fail && w == "w200") throw std::runtime_error("stopped");
      ++calls;
      return static_cast<std::int64_t>(w.size());
    };
  };
  std::vector<std::int64_t> lengths;
  for (const auto& w : words) lengths.push_back(static_cast<std::int64_t>(w.size()));
  const mpiproc::checkpoint cp{dir.file("items"), "words", std::chrono::milliseconds(0)};
  EXPECT_THROW(mpiproc::map(world(), words, length(true), schedule::dynamic(11), cp), mpiproc::remote_error);
  calls = 0;
  EXPECT_EQ(mpiproc::map(world(), words, length(false), schedule::dynamic(11), cp), lengths);
  EXPECT_LT(sum_over_ranks(calls), 300);

  const int root = world().size() - 1;
  const mpiproc::checkpoint sum_cp{dir.file("root_sum"), "", std::chrono::milliseconds(0)};
  auto square = [](bool fail) {
    return [fail](std::int64_t i) {
      if (fail && i == 777) throw std::runtime_error("stopped");
      return i * i;
    };
  };
  EXPECT_THROW(mpiproc::map_reduce_root(world(), root, range<std::int64_t>{0, 1000}, square(true), std::plus<>{},
                                        schedule::cyclic(5), sum_cp),
               mpiproc::remote_error);
  const auto sum = mpiproc::map_reduce_root(world(), root, range<std::int64_t>{0, 1000}, square(false), std::plus<>{},
                                            schedule::cyclic(5), sum_cp);
  EXPECT_EQ(sum.has_value(), world().rank() == root);
  if (sum) {
    EXPECT_EQ(*sum, 332833500);
  }
  // The file holds the answer: a rerun on every rank computes nothing and returns it.
  EXPECT_EQ(mpiproc::map_reduce(
                world(), range<std::int64_t>{0, 1000},
                [](std::int64_t) -> std::int64_t { throw std::runtime_error("computed again"); }, std::plus<>{},
                schedule::cyclic(5), mpiproc::checkpoint{dir.file("root_sum")}),
            332833500);
}
