#include <mpiproc/detail/check.hpp>
#include <mpiproc/environment.hpp>
#include <mpiproc/error.hpp>

#include <cstdio>
#include <exception>

namespace mpiproc {

environment::environment() { init(nullptr, nullptr); }

environment::environment(int& argc, char**& argv) { init(&argc, &argv); }

void environment::init(int* argc, char*** argv) {
  uncaught_at_start_ = std::uncaught_exceptions();
  int initialized = 0, finalized = 0;
  MPIPROC_CHECK(MPI_Initialized(&initialized));
  // After MPI_Finalize, MPI_Initialized says yes, and any other MPI call aborts the program.
  MPIPROC_CHECK(MPI_Finalized(&finalized));
  if (finalized) throw usage_error("mpiproc::environment: MPI was already finalized and cannot be initialized again");
  if (initialized) {
    MPIPROC_CHECK(MPI_Query_thread(&thread_level_));
  } else {
    MPIPROC_CHECK(MPI_Init_thread(argc, argv, requested_thread_level, &thread_level_));
    owns_ = true;
  }
}

environment::~environment() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (std::uncaught_exceptions() > uncaught_at_start_) {
    // A rank unwinding out of its MPI scope may leave others blocked in a collective: abort them all.
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr, "mpiproc: rank %d is leaving the MPI environment with an exception; aborting all ranks\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
}

}  // namespace mpiproc
