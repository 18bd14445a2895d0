#pragma once

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/clock.hpp>

#include <mpi.h>

#include <chrono>
#include <thread>

namespace mpiproc::detail {

/// Paces a polling loop without spinning a core for long: spins for a few microseconds (an answer
/// usually comes that fast), yields for 2 ms, then sleeps in 50 us steps, so that a waiting rank
/// leaves the core to the rank it waits for when ranks outnumber cores.
class poller {
 public:
  void pause() {
    using namespace std::chrono_literals;
    const auto waited = clock::now() - start_;
    if (waited < 20us)
      cpu_relax();
    else if (waited < 2ms)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(50us);
  }
  void restart() { start_ = clock::now(); }

 private:
  clock::time_point start_ = clock::now();
};

/// Polls `pending` until it completes (true) or the deadline passes (false): unlike MPI_Wait, it
/// does not spin a core for long, which would starve the service thread when ranks outnumber
/// cores, and leaves MPI's progress engine to that thread between tests.
inline bool complete_by(MPI_Request& pending, const deadline& until) {
  poller patience;
  for (int done = 0;;) {
    MPIPROC_CHECK(MPI_Test(&pending, &done, MPI_STATUS_IGNORE));
    if (done) return true;
    if (until && clock::now() >= *until) return false;
    patience.pause();
  }
}

}  // namespace mpiproc::detail
