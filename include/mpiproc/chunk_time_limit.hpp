#pragma once

#include <chrono>

namespace mpiproc {

/// The longest a map-style call's chunk may run: one call of a chunk function, or a slice of
/// element calls (see below). Instead of a job that hangs until Slurm kills it, a chunk that runs
/// past the limit fails the whole call on every rank with remote_error naming the rank, the
/// chunk's positions in the range and the limit:
///
///   mpiproc::map_reduce(world, range, fn, op, schedule, mpiproc::chunk_time_limit{std::chrono::minutes(5)});
///
/// C++ cannot stop a function that runs, so on each rank a watchdog thread watches the chunk in
/// hand. When one runs past the limit, the watchdog takes the rank's part of the call over: it
/// tells the other ranks (through rank 0, which they hear from between slices of their work, so
/// they stop within about a slice, 25 ms, after rank 0 heard) and makes the failure agreement that
/// ends the call in the rank's place. Every rank then throws remote_error, typically within a second
/// of the limit. If the stuck function returns within `grace` after that, its rank throws the same
/// remote_error and the program goes on as after any failed call. If it has not, the rank prints
/// the error on stderr and ends the whole job with MPI_Abort (exit status 1 from mpirun), so that
/// no rank waits forever for it (in MPI_Finalize, say). A call with a checkpoint keeps what the
/// stuck rank saved before (its rank file is rewritten every checkpoint::every), not the chunks it
/// completed since.
///
/// Element forms (map_reduce, map, for_each) run each rank's chunks in slices of about 25 ms, so
/// the limit applies to one element call, or to the few in a slice; chunk forms (map_reduce_chunks,
/// for_each_chunks) get the scheduled chunks whole, so the limit applies to one call of the chunk
/// function: choose the chunk size (a dynamic schedule's) with the limit in mind.
///
/// The watchdog calls MPI: a limit needs MPI_THREAD_MULTIPLE (an mpiproc::environment asks for it;
/// usage_error on every rank otherwise). Every rank must pass a limit or not (usage_error
/// otherwise); each rank watches its own chunks with the limit it was given.
struct chunk_time_limit {
  /// No limit (the default of every map-style call).
  chunk_time_limit() = default;
  /// Chunks may run at most `limit` (above zero); a stuck rank's job ends `grace` after the call failed.
  explicit chunk_time_limit(std::chrono::duration<double> limit,
                            std::chrono::duration<double> grace = std::chrono::seconds(10))
      : limit(limit), grace(grace) {}

  /// Whether there is a limit.
  explicit operator bool() const noexcept { return limit.count() > 0; }

  std::chrono::duration<double> limit{0};
  std::chrono::duration<double> grace{std::chrono::seconds(10)};
};

}  // namespace mpiproc
