// MPIPROC_COLLECTIVE_TIMEOUT's debug mode, as a program (its errors end the run): `missing`: rank
// 0 enters a map_reduce that the others never make; `mismatch`: rank 0 enters a map_reduce while
// the others enter a barrier; `ok`: ordinary collective calls pass the check. A usage_error is
// printed and the run ends with MPI_Abort(2).
#include <mpiproc/mpiproc.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();
  const char* mode = argc > 1 ? argv[1] : "ok";
  try {
    if (std::strcmp(mode, "missing") == 0) {
      if (world.rank() == 0)
        mpiproc::map_reduce(world, mpiproc::range<int>{0, 10}, [](int i) { return i; }, std::plus<>{});
      else
        std::this_thread::sleep_for(std::chrono::seconds(30));
    } else if (std::strcmp(mode, "mismatch") == 0) {
      if (world.rank() == 0)
        mpiproc::map_reduce(world, mpiproc::range<int>{0, 10}, [](int i) { return i; }, std::plus<>{});
      else
        world.barrier();
    } else {
      mpiproc::lock lock(world);
      const int sum = mpiproc::map_reduce(world, mpiproc::range<int>{0, 10}, [](int i) { return i; }, std::plus<>{},
                                          mpiproc::schedule::dynamic(1));
      world.barrier();
      if (world.rank() == 0) std::printf("sum %d\n", sum);
    }
  } catch (const mpiproc::usage_error& e) {
    std::printf("rank %d: usage_error: %s\n", world.rank(), e.what());
    std::fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  return 0;
}
