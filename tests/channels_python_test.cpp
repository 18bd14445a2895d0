// Queue and pipe against Python's multiprocessing semantics, and their misuse: size() counts items,
// a send to a closed end is an error (never a hang, never silently lost), an item that can never
// fit is refused at put, pipes and queues made and dropped in a loop keep memory flat.
#include "test_support.hpp"

#include <mpiproc/mpiproc.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using mpiproc::usage_error;
using test::world;

namespace {

int rank() { return world().rank(); }
int size() { return world().size(); }

/// Whether shared state goes by messages: forced, or ranks on several hosts. Collective on its
/// first call, which every rank makes at the same point (at the top of a test).
bool by_messages() {
  static const bool messages = [] {
    const char* path = std::getenv("MPIPROC_TRANSPORT");
    if (path && std::string(path) == "messages") return true;
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int on_node = 0, all = 0;
    MPI_Comm_size(node, &on_node);
    MPI_Comm_size(MPI_COMM_WORLD, &all);
    MPI_Comm_free(&node);
    return on_node != all;
  }();
  return messages;
}

/// This process's resident set in bytes (/proc/self/statm's second field, in pages).
std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t total = 0, resident = 0;
  statm >> total >> resident;
  return resident * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

/// A barrier that sleeps while it waits, so that ranks with nothing to do leave the cores to those
/// that work (MPI_Barrier spins, and tests run 4 ranks on 2 cores).
void polite_barrier() {
  MPI_Request pending = MPI_REQUEST_NULL;
  MPI_Ibarrier(MPI_COMM_WORLD, &pending);
  for (int done = 0; !done;) {
    MPI_Test(&pending, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(1ms);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Queue: sizes

TEST(QueueSize, CountsItemsNotSlots) {
  // Strings over a slot's 240 bytes take several slots each; size() counts them once.
  mpiproc::queue<std::string> q(world(), {.capacity = 6});
  if (rank() == 0) {
    EXPECT_TRUE(q.empty());
    q.put(std::string(1000, 'a'));
    EXPECT_EQ(q.size(), 1u);
    EXPECT_FALSE(q.empty());
    for (int i = 1; i < 6; ++i) q.put(std::string(1000 + static_cast<std::size_t>(i), 'a'));
  }
  world().barrier();
  EXPECT_EQ(q.size(), 6u);
  world().barrier();
  if (rank() == 0) {
    for (int i = 0; i < 6; ++i) EXPECT_EQ(q.get().value_or("").size(), 1000u + static_cast<std::size_t>(i));
    EXPECT_EQ(q.size(), 0u);
    EXPECT_TRUE(q.empty());
  }
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// Pipe: sends to an end that is closed

TEST(PipeClosed, SendAfterTheEndOfStreamThrows) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  for (const std::size_t bytes : {std::size_t{8}, std::size_t{2048}, std::size_t{4096}, std::size_t{1} << 20}) {
    mpiproc::pipe<std::string> p(world(), 0, 1);
    if (rank() == 0) p.close();
    if (rank() == 1) {
      EXPECT_FALSE(p.recv().has_value());  // the end of stream
      EXPECT_THROW(p.send(std::string(bytes, 'x')), usage_error) << bytes << " bytes";
      EXPECT_THROW(p.send(std::string(bytes, 'x')), usage_error) << bytes << " bytes, again";
    }
    world().barrier();
  }
}

TEST(PipeClosed, SendToAnEndClosedBeforeThrows) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  for (const std::size_t bytes : {std::size_t{8}, std::size_t{4096}, std::size_t{1} << 20}) {
    for (const auto mode : {mpiproc::pipe_mode::duplex, mpiproc::pipe_mode::one_way}) {
      mpiproc::pipe<std::string> p(world(), 0, 1, mode);
      if (rank() == 1) p.close();
      world().barrier();  // rank 1's end message is here before rank 0 sends
      if (rank() == 0) {
        EXPECT_THROW(p.send(std::string(bytes, 'x')), usage_error) << bytes << " bytes";
      }
      world().barrier();
    }
  }
}

TEST(PipeClosed, ALargeSendWaitingWhenTheOtherEndClosesThrows) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::pipe<std::string> p(world(), 0, 1);
  if (rank() == 0) {
    EXPECT_THROW(p.send(std::string(std::size_t{1} << 20, 'x')), usage_error);
  }
  if (rank() == 1) {
    std::this_thread::sleep_for(200ms);
    p.close();
  }
  world().barrier();
}

TEST(PipeClosed, BothEndsClosingWithMessagesUnreadIsQuiet) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  // Messages nobody reads, small and large, then both ends close: nothing waits, nothing throws,
  // and nothing of one pipe reaches the next.
  for (int round = 0; round < 50; ++round) {
    mpiproc::pipe<std::string> p(world(), 0, 1);
    if (rank() <= 1) p.send(std::string(round % 2 ? 100 : 700, static_cast<char>('a' + round % 26)));
    world().barrier();
  }
  mpiproc::pipe<std::string> p(world(), 0, 1);
  if (rank() == 0) p.send("last");
  if (rank() == 1) {
    EXPECT_EQ(p.recv().value_or("<end>"), "last");
  }
  world().barrier();
}

TEST(PipeClosed, SendToAnEndThatClosedInEveryOrderIsAnErrorOrDelivered) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  // Rank 1 closes at some point while rank 0 sends small and large messages: each send either
  // arrives or throws usage_error, never waits for good, and after one throws every later one does.
  for (int delay_ms : {0, 1, 5, 20}) {
    mpiproc::pipe<std::string> p(world(), 0, 1);
    world().barrier();
    if (rank() == 0) {
      bool refused = false;
      for (int i = 0; i < 40; ++i) {
        try {
          p.send(std::string(i % 2 ? 64 : 100000, 'x'));
          EXPECT_FALSE(refused) << "a send went through after one was refused";
        } catch (const usage_error&) {
          refused = true;
        }
      }
    }
    if (rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      p.close();
    }
    world().barrier();
  }
}

// ---------------------------------------------------------------------------------------------
// Queue: an item that can never fit

TEST(QueueTooLarge, AnItemLargerThanTheRingIsAUsageErrorAtPut) {
  // 4 slots of 16 bytes: 64 bytes at most on one node; over messages the list takes anything.
  mpiproc::queue<std::string> q(world(), {.slots = 4, .slot_bytes = 16});
  const bool messages = by_messages();
  if (rank() == 0) {
    if (messages) {
      q.put(std::string(65, 'x'));
      EXPECT_EQ(q.get().value_or("").size(), 65u);
    } else {
      EXPECT_THROW(q.put(std::string(65, 'x')), usage_error);
      q.put(std::string(64, 'x'));  // fits exactly
      EXPECT_EQ(q.get().value_or("").size(), 64u);
    }
  }
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// Memory: pipes and queues made and dropped in a loop

/// AddressSanitizer keeps freed memory in quarantine, so the resident set says nothing there.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool resident_set_means_little = true;
#else
constexpr bool resident_set_means_little = false;
#endif

TEST(ChannelMemory, PipesMadeAndDroppedKeepMemoryFlat) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  if (resident_set_means_little) GTEST_SKIP() << "AddressSanitizer's quarantine holds freed memory (the Release run checks)";
  // Every rank makes every pipe (pipes are numbered in order on each rank); ranks 0 and 1 use them.
  const auto round = [](int n) {
    for (int i = 0; i < n; ++i) {
      {
        mpiproc::pipe<int> p(world(), 0, 1);  // duplex, dropped unused
      }
      mpiproc::pipe<int> one(world(), 0, 1, mpiproc::pipe_mode::one_way);
      if (rank() == 0) {
        one.send(i);
        one.close();
      }
      if (rank() == 1) {
        EXPECT_EQ(one.recv().value_or(-1), i);
        EXPECT_FALSE(one.recv().has_value());  // read to its end
      }
      if (i % 500 == 499) polite_barrier();  // neither end runs far ahead (a backlog is not a leak)
    }
    polite_barrier();
  };
  round(1000);  // warm up MPI's pools
  const std::int64_t before = resident_bytes();
  const auto start = std::chrono::steady_clock::now();
  round(10000);
  const std::int64_t after = resident_bytes();
  std::printf("rank %d: 20,000 pipes: resident %lld -> %lld KiB (%+lld KiB) in %.2f s\n", rank(),
              static_cast<long long>(before >> 10), static_cast<long long>(after >> 10),
              static_cast<long long>((after - before) >> 10), test::seconds_since(start));
  // The leak this guards against was 0.9 KB a pipe: 18 MB here.
  EXPECT_LT(after - before, std::int64_t{2} << 20) << "rank " << rank();
}

TEST(ChannelMemory, QueuesMadeAndDroppedKeepMemoryFlat) {
  if (resident_set_means_little) GTEST_SKIP() << "AddressSanitizer's quarantine holds freed memory (the Release run checks)";
  const int n = by_messages() ? 150 : 300;
  const auto round = [&](int count) {
    for (int i = 0; i < count; ++i) {
      mpiproc::queue<std::int64_t> q(world(), {.capacity = 4});
      if (rank() == 0) q.put(i);
      if (rank() == size() - 1) {
        EXPECT_EQ(q.get().value_or(-1), i);
      }
    }
    polite_barrier();
  };
  round(n / 2);
  const std::int64_t before = resident_bytes();
  round(n);
  const std::int64_t after = resident_bytes();
  std::printf("rank %d: %d queues: resident %lld -> %lld KiB (%+lld KiB)\n", rank(), n,
              static_cast<long long>(before >> 10), static_cast<long long>(after >> 10),
              static_cast<long long>((after - before) >> 10));
  EXPECT_LT(after - before, std::int64_t{1} << 20) << "rank " << rank();
}

// ---------------------------------------------------------------------------------------------
// Queue: Python's put_nowait, get_nowait, full, put with a timeout; JoinableQueue

TEST(QueuePython, NowaitCallsThrowFullAndEmptyAndTimedPutsGiveUp) {
  mpiproc::queue<int> q(world(), {.capacity = 2});
  if (rank() == 0) {
    EXPECT_THROW(q.get_nowait(), mpiproc::queue_empty);
    EXPECT_FALSE(q.full());
    q.put_nowait(1);
    EXPECT_TRUE(q.try_put(2));
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.size(), 2u);
    EXPECT_THROW(q.put_nowait(3), mpiproc::queue_full);
    EXPECT_FALSE(q.try_put(3));
    EXPECT_FALSE(q.put_for(3, 20ms));
    EXPECT_EQ(q.size(), 2u);  // the refused puts left nothing behind
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_FALSE(q.full());
    EXPECT_TRUE(q.put_for(3, 10s));
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.get_nowait(), 3);
    EXPECT_THROW(q.get_nowait(), mpiproc::queue_empty);
    EXPECT_TRUE(q.empty());
  }
  world().barrier();
  // A timed put waits for room that another rank makes.
  if (size() > 1) {
    if (rank() == 0) {
      q.put(10);
      q.put(11);
    }
    world().barrier();
    if (rank() == 0) {
      EXPECT_TRUE(q.put_for(12, 30s));
    }
    if (rank() == 1) {
      EXPECT_EQ(q.get().value_or(-1), 10);
    }
    world().barrier();
    if (rank() == 0) {
      EXPECT_EQ(q.get_nowait(), 11);
      EXPECT_EQ(q.get_nowait(), 12);
    }
  }
  world().barrier();
  if (rank() == 0) q.close();
  world().barrier();
  EXPECT_THROW(q.put_nowait(1), usage_error);
  EXPECT_THROW(q.try_put(1), usage_error);
  EXPECT_THROW(q.put_for(1, 1s), usage_error);
  EXPECT_THROW(q.get_nowait(), mpiproc::queue_empty);  // closed and drained
  EXPECT_TRUE(q.ended());
}

TEST(QueuePython, TryPutOnARingWithoutCapacityRefusesWhatTheSlotsCannotTakeNow) {
  if (by_messages()) GTEST_SKIP() << "a queue over messages has no ring (and no limit without a capacity)";
  mpiproc::queue<std::string> q(world(), {.slots = 4, .slot_bytes = 16});
  if (rank() == 0) {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(q.try_put(std::string(16, 'a')));  // three of four slots
    EXPECT_FALSE(q.full());
    EXPECT_FALSE(q.try_put(std::string(32, 'b')));  // needs two slots
    EXPECT_FALSE(q.put_for(std::string(32, 'b'), 20ms));
    EXPECT_TRUE(q.try_put(std::string(1, 'c')));
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait(std::string(1, 'd')), mpiproc::queue_full);
    EXPECT_EQ(q.size(), 4u);
    EXPECT_EQ(q.get_nowait(), std::string(16, 'a'));
    EXPECT_EQ(q.get_nowait(), std::string(16, 'a'));
    EXPECT_TRUE(q.try_put(std::string(32, 'b')));
    EXPECT_EQ(q.get_nowait(), std::string(16, 'a'));
    EXPECT_EQ(q.get_nowait(), "c");
    EXPECT_EQ(q.get_nowait(), std::string(32, 'b'));
    EXPECT_TRUE(q.empty());
  }
  world().barrier();
}

TEST(JoinableQueue, JoinWaitsUntilEveryItemPutIsDone) {
  mpiproc::joinable_queue<std::int64_t> q(world());
  mpiproc::counter done(world());
  q.join();  // nothing put: at once
  world().barrier();  // (else a rank still here would wait for the items rank 0 now puts)
  const std::int64_t n = by_messages() ? 60 : 300;
  if (rank() == 0) {
    for (std::int64_t i = 0; i < n; ++i) q.put(i);
    q.close();
  }
  std::int64_t sum = 0;
  if (rank() != 0 || size() == 1)
    while (auto item = q.get()) {
      sum += *item;
      done.fetch_add(1);
      q.task_done();
    }
  q.join();  // every rank: returns once the last task is done
  EXPECT_EQ(done.load(), static_cast<std::uint64_t>(n));
  const std::vector<std::int64_t> sums = test::all_gather({sum});
  std::int64_t total = 0;
  for (std::int64_t s : sums) total += s;
  EXPECT_EQ(total, n * (n - 1) / 2);
  world().barrier();
  EXPECT_THROW(q.task_done(), usage_error);  // more task_done than items, on every rank
  EXPECT_TRUE(q.join_for(0s));
  world().barrier();
}

TEST(JoinableQueue, JoinForTimesOutWhileATaskIsPendingAndPlainQueuesHaveNoTasks) {
  mpiproc::joinable_queue<std::string> q(world());
  if (rank() == 0) {
    q.put("task");
    EXPECT_FALSE(q.join_for(20ms));
    EXPECT_EQ(q.get().value_or(""), "task");
    EXPECT_FALSE(q.join_for(0s));  // taken is not done
    q.task_done();
    EXPECT_TRUE(q.join_for(10s));
    EXPECT_THROW(q.task_done(), usage_error);
    q.put("again");
    EXPECT_FALSE(q.join_for(0s));  // the count stayed at zero after the refused task_done
  }
  world().barrier();
  if (rank() == size() - 1) {
    EXPECT_EQ(q.get().value_or(""), "again");
    q.task_done();
  }
  q.join();
  // A moved-from queue is a usage_error, not a crash.
  mpiproc::queue<int> a(world());
  mpiproc::queue<int> b(std::move(a));
  EXPECT_THROW(a.put(1), usage_error);  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW(a.size(), usage_error);  // NOLINT(bugprone-use-after-move)
  world().barrier();
}

// ---------------------------------------------------------------------------------------------
// Pipe: Python's send_bytes, recv_bytes, recv_bytes_into

TEST(PipeBytes, SendBytesWithOffsetAndSizeAndRecvBytes) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::pipe<> p(world(), 0, 1);
  if (rank() == 0) {
    const std::string msg = "abcdefghijklmnopqrstuvwxyz";
    p.send_bytes(msg);
    p.send_bytes(msg, 24);
    p.send_bytes(msg, 10, 5);
    p.send_bytes(msg, 26);           // empty, as Python's send_bytes(msg, 26)
    p.send_bytes(msg.data(), 3);     // pointer and length
    p.send_bytes("literal");         // without its terminating zero
    const std::vector<std::int32_t> numbers = {1, 2, 3, 4};
    p.send_bytes(numbers, 4, 8);     // offset and size in bytes: the items 2 and 3
    p.send_bytes(std::string(1 << 20, 'z'));  // large
    EXPECT_THROW(p.send_bytes(msg, 27), usage_error);  // Python's ValueError: offset past the end
    EXPECT_THROW(p.send_bytes(msg, 20, 7), usage_error);
    EXPECT_THROW(p.send_bytes(nullptr, 1), usage_error);
    p.send("a value, sent with send");
    p.close();
  }
  if (rank() == 1) {
    EXPECT_EQ(p.recv_bytes().value_or("<end>"), "abcdefghijklmnopqrstuvwxyz");
    EXPECT_EQ(p.recv_bytes().value_or("<end>"), "yz");
    EXPECT_EQ(p.recv_bytes().value_or("<end>"), "klmno");
    EXPECT_EQ(p.recv_bytes().value_or("<end>"), "");
    EXPECT_EQ(p.recv_bytes().value_or("<end>"), "abc");
    EXPECT_EQ(p.recv_bytes().value_or("<end>"), "literal");
    std::vector<std::int32_t> two(2);
    EXPECT_EQ(p.recv_bytes_into(two).value_or(0), 8u);
    EXPECT_EQ(two, (std::vector<std::int32_t>{2, 3}));
    EXPECT_EQ(p.recv_bytes().value_or("").size(), std::size_t{1} << 20);
    EXPECT_EQ(p.recv().value_or("<end>"), "a value, sent with send");
    EXPECT_FALSE(p.recv_bytes().has_value());  // the end of stream, as Python's EOFError
    EXPECT_FALSE(p.recv_bytes_into(two).has_value());
  }
  world().barrier();
}

TEST(PipeBytes, MessagesTooLongForTheBufferThrowBufferTooShortAndStayReadable) {
  if (size() < 2) GTEST_SKIP() << "needs 2 ranks";
  mpiproc::pipe<> p(world(), 0, 1, mpiproc::pipe_mode::one_way);
  const std::string longmsg(40, 'L');
  if (rank() == 0) {
    p.send_bytes(longmsg);
    p.send_bytes(longmsg);
    p.send_bytes("short");
    p.send_bytes(std::string(100000, 'B'));
  }
  if (rank() == 1) {
    std::string buffer(39, ' ');
    EXPECT_THROW(p.recv_bytes_into(buffer), mpiproc::buffer_too_short);
    EXPECT_EQ(buffer, std::string(39, ' '));  // untouched
    EXPECT_THROW(p.recv_bytes(39), mpiproc::buffer_too_short);
    EXPECT_EQ(p.recv_bytes(40).value_or(""), longmsg);  // still there
    std::string big(50, '.');
    EXPECT_THROW(p.recv_bytes_into(big, 11), mpiproc::buffer_too_short);  // 39 bytes from offset 11
    EXPECT_EQ(p.recv_bytes_into(big, 10).value_or(0), 40u);
    EXPECT_EQ(big, std::string(10, '.') + longmsg);
    EXPECT_THROW(p.recv_bytes_into(big, 51), usage_error);  // Python's ValueError
    char raw[8] = {};
    EXPECT_EQ(p.recv_bytes_into(raw, sizeof raw).value_or(0), 5u);
    EXPECT_EQ(std::string(raw, 5), "short");
    EXPECT_THROW(p.recv_bytes_into(raw, sizeof raw), mpiproc::buffer_too_short);  // a large one, too
    EXPECT_EQ(p.recv_bytes().value_or("").size(), 100000u);
    EXPECT_THROW(p.send_bytes("x"), usage_error);  // the receiving end of a one-way pipe
  }
  world().barrier();
}

// Every public object moves (MPL's value semantics): a moved pipe, dict and list keep working where
// they went, and the moved-from object is a usage_error to use, never a crash.
static_assert(std::is_nothrow_move_constructible_v<mpiproc::pipe<int>>);
static_assert(std::is_move_assignable_v<mpiproc::pipe<int>>);
static_assert(std::is_nothrow_move_constructible_v<mpiproc::shared_dict<int, int>>);
static_assert(std::is_nothrow_move_constructible_v<mpiproc::shared_list<int>>);
static_assert(!std::is_copy_constructible_v<mpiproc::pipe<int>>);
static_assert(!std::is_copy_constructible_v<mpiproc::shared_dict<int, int>>);
static_assert(!std::is_copy_constructible_v<mpiproc::shared_list<int>>);

TEST(Movable, PipeDictAndListWorkWhereTheyWereMovedAndNotWhereFrom) {
  if (size() > 1) {  // a pipe joins two ranks
    const int last = size() - 1;
    mpiproc::pipe<int> made(world(), 0, last);
    std::vector<mpiproc::pipe<int>> pipes;
    pipes.push_back(std::move(made));
    EXPECT_THROW((void)made.is_end(), usage_error);
    if (rank() == 0) pipes[0].send(42);
    if (rank() == last) {
      EXPECT_EQ(pipes[0].recv(), std::optional<int>(42));
    }
  }

  mpiproc::shared_dict<int, int> dict(world());
  mpiproc::shared_dict<int, int> dict_moved(std::move(dict));
  dict_moved.set(rank(), rank() * 10);
  EXPECT_THROW(dict.set(0, 1), usage_error);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(static_cast<int>(dict_moved.size()), size());

  mpiproc::shared_list<int> list(world(), {1, 2, 3});
  mpiproc::shared_list<int> list_moved(std::move(list));
  EXPECT_EQ(list_moved.size(), 3u);
  EXPECT_THROW((void)list.size(), usage_error);
  MPI_Barrier(MPI_COMM_WORLD);
}
