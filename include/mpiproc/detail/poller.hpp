#pragma once

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/clock.hpp>

#include <mpi.h>

#include <chrono>
#include <thread>

namespace mpiproc::detail {

/// The one waiting policy: a wait spins for a few microseconds (an answer usually comes that
/// fast), then yields, then sleeps, so that a waiting rank leaves the core to the rank it waits
/// for when ranks outnumber cores. Polling MPI sleeps in 50 us steps (pause()); a wait on shared
/// memory sleeps on a futex instead once sleepy() says so.
class poller {
 public:
  /// The pace of polling MPI: spins 20 us, yields until 2 ms.
  poller() = default;
  /// Spins for `spin_for`, then yields until `yield_until` has passed since the start.
  poller(clock::duration spin_for, clock::duration yield_until) : spin_for_(spin_for), yield_until_(yield_until) {}

  /// The pace of a wait on shared memory, which sleeps on a futex: spins 4 us, yields until 100 us.
  static poller for_memory() { return {std::chrono::microseconds(4), std::chrono::microseconds(100)}; }

  /// Waits a moment: spins, yields or sleeps, as the time waited so far says.
  void pause() {
    const auto waited = clock::now() - start_;
    if (waited < spin_for_)
      cpu_relax();
    else if (waited < yield_until_)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  /// Whether the wait is still in its first, spinning moments.
  bool spinning() const { return clock::now() - start_ < spin_for_; }
  /// Whether spinning and yielding are over: a wait that can sleep until woken should.
  bool sleepy() const { return clock::now() - start_ >= yield_until_; }
  void restart() { start_ = clock::now(); }

 private:
  clock::duration spin_for_ = std::chrono::microseconds(20);
  clock::duration yield_until_ = std::chrono::milliseconds(2);
  clock::time_point start_ = clock::now();
};

/// The one way mpiproc waits for what MPI has to progress: polls `ready()` until it returns true
/// (then true) or the deadline passes (false), paced by poller. Unlike MPI_Wait, it does not spin a
/// core for long, which would starve the service thread when ranks outnumber cores, and leaves
/// MPI's progress engine to that thread between tests.
template <class Ready>
bool poll_until(Ready&& ready, const deadline& until) {
  poller patience;
  for (;;) {
    if (ready()) return true;
    if (until && clock::now() >= *until) return false;
    patience.pause();
  }
}

/// Whether `pending` has completed (its status into `status`).
inline bool completed(MPI_Request& pending, MPI_Status* status = MPI_STATUS_IGNORE) {
  int done = 0;
  MPIPROC_CHECK(MPI_Test(&pending, &done, status));
  return done != 0;
}

/// Polls `pending` until it completes (true) or the deadline passes (false).
inline bool complete_by(MPI_Request& pending, const deadline& until) {
  return poll_until([&] { return completed(pending); }, until);
}

/// Polls `pending` until it completes (true, its status into `status`) or `stopped()` says that it
/// never will (false: the request is still pending, to cancel). stopped() costs more than a test,
/// so it is asked every `every` tests; once it holds, the request is tested once more, since what
/// was sent before the stop has come by then.
template <class Stopped>
bool complete_unless(MPI_Request& pending, MPI_Status* status, int every, Stopped&& stopped) {
  bool done = false;
  int round = 0;
  poll_until(
      [&] {
        if ((done = completed(pending, status))) return true;
        if (++round % every != 0 || !stopped()) return false;
        done = completed(pending, status);
        return true;
      },
      std::nullopt);
  return done;
}

}  // namespace mpiproc::detail
