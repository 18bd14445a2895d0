// An HPC code that owns MPI_Init/MPI_Finalize links mpiproc: the environment must neither
// initialize nor finalize MPI, and mpiproc works on the code's own communicator, also when the
// code asked for no thread support (plain MPI_Init).
#include <mpiproc/mpiproc.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAILED: %s\n", what);
      ++failures;
    }
  };
  {
    mpiproc::environment env;
    expect(!env.owns_mpi(), "environment must not own an MPI the host initialized");
    const auto world = env.world();
    const long sum = mpiproc::map_reduce(world, mpiproc::range<long>{0, 1000}, [](long i) { return i; }, std::plus<>{},
                                         mpiproc::schedule::dynamic(10));
    expect(sum == 499500, "map_reduce on the host's MPI");
  }
  int finalized = 1;
  MPI_Finalized(&finalized);
  expect(!finalized, "environment must not finalize an MPI the host initialized");
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Finalize();
  std::printf("%s\n", total == 0 ? "host-initialized MPI: ok" : "host-initialized MPI: FAILED");
  return total == 0 ? 0 : 1;
}
