#pragma once

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/clock.hpp>

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace mpiproc::detail {

/// The one waiting policy: a wait spins for a few microseconds (an answer usually comes that
/// fast), then yields, then sleeps, so that a waiting rank leaves the core to the rank it waits
/// for when ranks outnumber cores. Polling MPI sleeps in 50 us steps (pause(); a service thread
/// in longer ones, see for_service()); a wait on shared memory sleeps on a futex instead once
/// sleepy() says so.
class poller {
 public:
  /// The pace of polling MPI: spins 20 us, yields until 2 ms.
  poller() = default;

  /// The pace of a wait on shared memory, which sleeps on a futex: 64 quick spins (no clock read
  /// between them, so a change is seen within nanoseconds), then yields until 100 us.
  static poller for_memory() {
    poller p;
    p.spins_left_ = 64;
    p.spin_for_ = clock::duration::zero();
    p.yield_until_ = std::chrono::microseconds(100);
    return p;
  }

  /// The pace of a service thread waiting for requests: as poller(), but once it has waited 2 ms
  /// its sleeps grow with the wait (a twentieth of it, at most 1 ms), so that a rank whose service
  /// has nothing to answer (most ranks, most of the time) does not keep waking beside its work.
  static poller for_service() {
    poller p;
    p.sleep_most_ = std::chrono::milliseconds(1);
    return p;
  }

  /// Waits a moment: spins, yields or sleeps, as the time waited so far says.
  void pause() {
    if (spins_left_ > 0) {
      --spins_left_;
      cpu_relax();
      return;
    }
    const auto waited = elapsed();
    if (waited < spin_for_)
      cpu_relax();
    else if (waited < yield_until_)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::clamp<clock::duration>(waited / 20, sleep_least, sleep_most_));
  }
  /// Whether the wait is still in its first, spinning moments.
  bool spinning() { return spins_left_ > 0 || elapsed() < spin_for_; }
  /// Whether spinning and yielding are over: a wait that can sleep until woken should.
  bool sleepy() { return spins_left_ == 0 && elapsed() >= yield_until_; }
  /// Starts the wait over.
  void restart() { started_ = false; }

 private:
  /// The time since the clock was first read (a clock read costs tens of nanoseconds: a wait
  /// that ends within its quick spins never reads it).
  clock::duration elapsed() {
    const auto now = clock::now();
    if (!started_) {
      start_ = now;
      started_ = true;
    }
    return now - start_;
  }

  int spins_left_ = 0;  // quick spins before the clock is read
  clock::duration spin_for_ = std::chrono::microseconds(20);
  clock::duration yield_until_ = std::chrono::milliseconds(2);
  static constexpr clock::duration sleep_least = std::chrono::microseconds(50);
  clock::duration sleep_most_ = sleep_least;
  clock::time_point start_{};
  bool started_ = false;
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
