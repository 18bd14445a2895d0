#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace mpiproc {

/// Whole-job progress of a map-style call (map_reduce, map, for_each and their forms), shown on
/// rank 0 of the call's communicator:
///
///   mpiproc::map_reduce(world, range, fn, std::plus<>{}, schedule, mpiproc::progress{"primes"});
///
/// Rank 0 counts the items done on every rank (each rank tells it with small nonblocking messages
/// between slices of its work, so it works across hosts and needs no MPI_THREAD_MULTIPLE). On a
/// terminal (stderr is a tty) it redraws one line on stderr with the items done, the rate and the
/// time left; otherwise (stderr is a file, as in a Slurm log) it prints a plain line each time
/// another 10 % is done, or 30 s after the last line, whichever comes first:
///
///   primes: 40% (4000000/10000000 items) in 2.1 s, 1.9M items/s, about 3.2 s left
///
/// and a last line at 100 % when the call completes. With `on_update` set, rank 0 calls it instead
/// of showing anything: with the items done (never decreasing), the total and the time since the
/// call started, the last time with done == total once the call completed everywhere.
///
/// So that the display advances, every rank works through its chunks in slices of about 25 ms
/// (a block schedule's one chunk per rank too): the element functions run in the same tight loop
/// over each slice. The chunk forms (map_reduce_chunks, for_each_chunks) still get the scheduled
/// chunks whole, so their progress advances chunk by chunk: give them a dynamic or guided
/// schedule, not block, for a display that moves. A call resumed from a checkpoint counts the items an earlier run completed as
/// done (the lines say how many); the rate and the time left count this run's items only.
///
/// Every rank must pass progress or not, like the schedule (usage_error on every rank otherwise);
/// the label, `quiet_for` and `on_update` are rank 0's. Off unless passed to the call. If
/// on_update throws while the ranks work, the call fails on every rank with its message
/// (remote_error); once the work is over (the final call), it is reported on stderr instead, since
/// the other ranks have returned. While a chunk time limit takes over a stuck rank 0, on_update runs
/// on the limit's watchdog thread.
struct progress {
  /// What on_update receives: items done (with those a checkpoint held), items in all, time since
  /// the call started.
  using callback = std::function<void(std::int64_t done, std::int64_t total, std::chrono::duration<double> elapsed)>;

  /// Progress on, unlabelled.
  progress() = default;
  /// Progress on, its lines starting with `label`.
  explicit progress(std::string label) : label(std::move(label)) {}
  /// Progress on, reported to `on_update` on rank 0 instead of shown.
  explicit progress(callback on_update) : on_update(std::move(on_update)) {}
  /// No progress: what a call gets when it is not passed one (for a switch like --no-progress).
  static progress off() {
    progress none;
    none.enabled = false;
    return none;
  }

  bool enabled = true;
  std::string label;
  callback on_update;
  /// Shows nothing until the call has run this long, and nothing at all for a shorter call (so that
  /// a program can leave progress on without quick runs printing it).
  std::chrono::milliseconds quiet_for{0};
};

}  // namespace mpiproc
