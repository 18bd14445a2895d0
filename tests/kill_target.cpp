// kill_target MODE DIR: a job for tests/kill_rank.sh to SIGKILL a rank of. Every rank builds what
// MODE names (collectively), writes DIR/rank-<r>.pid ("<pid> <parent pid>") and then blocks there
// for good: computing, or waiting in the primitive, so that whichever rank is killed, the others
// are caught waiting on it (or on each other). With more than two ranks the roles are: rank 0 (which
// holds most shared state: a queue's ring, a lock's word, the dynamic schedule's counter) and the
// last rank (which holds the lock, computes the long item, is a pipe's other end).
//   compute     every rank computes a dynamic map_reduce that never ends (1 ms items)
//   checkpoint  the same with a checkpoint in DIR/ck, rewritten every 20 ms
//   map_wait    a block map_reduce: the last rank computes for good, the others wait at the end
//   lock        the last rank holds a lock (sleeping); the others wait in lock()
//   queue       every rank waits in get() on an empty queue
//   queue_full  every rank waits in put() on a full queue (capacity 1)
//   pipe        ranks 0 and last wait in recv() on a pipe between them; the others in a barrier
//   barrier     every rank waits in a barrier for one party more than there are ranks
//   event       every rank waits for an event nobody sets
//   semaphore   every rank waits in acquire() on a semaphore at 0
//   condition   every rank waits on a condition nobody notifies
//   dict        every rank sets and gets keys of a shared_dict in a loop (every rank owns some)
//   churn       every rank makes and drops events in a loop (collective construction and release:
//               shared windows, services and communicators made and freed all the time)
// It never ends by itself: the test kills it.
#include <mpiproc/mpiproc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace {

/// Busy for about `ms` milliseconds (a rank that computes, not one that sleeps).
std::int64_t spin(double ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms);
  std::int64_t n = 0;
  while (std::chrono::steady_clock::now() < until) ++n;
  return n & 1;
}

[[noreturn]] void sleep_for_good() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kill_target MODE DIR\n");
    return 2;
  }
  mpiproc::environment env{argc, argv};
  const auto world = env.world();
  const int rank = world.rank(), size = world.size(), last = size - 1;
  const std::string mode = argv[1];
  const std::filesystem::path dir = argv[2];
  if (size < 2) {
    std::fprintf(stderr, "kill_target: needs 2 ranks or more\n");
    return 2;
  }
  // Written whole (renamed into place), so that the test never reads half a line.
  const auto ready = [&] {
    const auto file = dir / ("rank-" + std::to_string(rank) + ".pid");
    {
      std::ofstream out(file.string() + ".tmp");
      out << getpid() << ' ' << getppid() << '\n';
    }
    std::filesystem::rename(file.string() + ".tmp", file);
  };
  const mpiproc::range<std::int64_t> endless{0, std::int64_t{1} << 40};
  const auto item = [](std::int64_t) { return spin(1); };

  if (mode == "compute") {
    ready();
    mpiproc::map_reduce(world, endless, item, std::plus<>{}, mpiproc::schedule::dynamic(1));
  } else if (mode == "checkpoint") {
    if (rank == 0) std::filesystem::create_directories(dir / "ck");
    world.barrier();
    ready();
    mpiproc::map_reduce(world, endless, item, std::plus<>{}, mpiproc::schedule::dynamic(1),
                        mpiproc::checkpoint{dir / "ck" / "sum.ckpt", "kill", std::chrono::milliseconds(20)});
  } else if (mode == "map_wait") {
    ready();
    mpiproc::map_reduce(
        world, mpiproc::range<int>{0, size},
        [&](int i) { return i == last ? spin(1e9) : 0; }, std::plus<>{}, mpiproc::schedule::block());
  } else if (mode == "lock") {
    mpiproc::lock mutex(world);
    if (rank == last) mutex.lock();
    world.barrier();
    ready();
    if (rank == last) sleep_for_good();
    mutex.lock();
  } else if (mode == "queue") {
    mpiproc::queue<int> q(world);
    ready();
    q.get();
  } else if (mode == "queue_full") {
    mpiproc::queue<int> q(world, mpiproc::queue_options{.capacity = 1});
    if (rank == 0) q.put(0);
    world.barrier();
    ready();
    q.put(rank);
  } else if (mode == "pipe") {
    mpiproc::pipe<int> p(world, 0, last);
    ready();
    if (rank == 0 || rank == last)
      p.recv();
    else
      world.barrier();
  } else if (mode == "barrier") {
    mpiproc::barrier b(world, static_cast<std::uint64_t>(size) + 1);
    ready();
    b.wait();
  } else if (mode == "event") {
    mpiproc::event e(world);
    ready();
    e.wait();
  } else if (mode == "semaphore") {
    mpiproc::semaphore s(world, 0);
    ready();
    s.acquire();
  } else if (mode == "condition") {
    mpiproc::condition c(world);
    std::lock_guard guard(c);
    ready();
    c.wait();
  } else if (mode == "dict") {
    mpiproc::shared_dict<int, int> d(world);
    ready();
    for (int i = 0;; ++i) {
      d.set(rank * 1000 + i % 1000, i);
      d.get((rank + 1) % size * 1000 + i % 1000);
    }
  } else if (mode == "churn") {
    ready();
    for (;;) {
      mpiproc::event e(world);
      if (rank == 0) e.set();
    }
  } else {
    if (rank == 0) std::fprintf(stderr, "kill_target: unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  std::fprintf(stderr, "kill_target: rank %d: mode %s returned, which it never should\n", rank, mode.c_str());
  return 3;
}
