// A chunk that never returns, under a chunk_time_limit: the other ranks get remote_error soon
// after the limit, and the stuck rank ends the job with MPI_Abort after the grace period, so that
// nothing hangs (ctest's TIMEOUT bounds the whole job). The last rank runs the stuck item.
#include <mpiproc/mpiproc.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  mpiproc::environment env{argc, argv};
  const auto world = env.world();
  const auto start = std::chrono::steady_clock::now();
  try {
    mpiproc::map_reduce(
        world, mpiproc::range<long>{0, 100},
        [](long i) {
          if (i == 99) std::this_thread::sleep_for(1h);
          return i;
        },
        std::plus<>{}, mpiproc::schedule::block(), mpiproc::chunk_time_limit{500ms, 1s});
  } catch (const mpiproc::remote_error& e) {
    std::printf("rank %d: remote_error after %.1f s: %s\n", world.rank(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), e.what());
    std::fflush(stdout);
  }
  return 0;  // MPI_Finalize waits for the stuck rank, whose watchdog ends the job
}
