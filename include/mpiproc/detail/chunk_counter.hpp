#pragma once

#include <mpi.h>

#include <cstdint>

namespace mpiproc::detail {

/// The shared "next chunk" counter of the dynamic and guided schedules: a 64-bit integer on rank 0
/// that every rank increments with MPI_Fetch_and_op, so no rank sits idle as a master.
///
/// Two slots alternate between consecutive loops. At the start of loop k, rank 0 zeroes the slot
/// of loop k+1; every rank reaches loop k+1 only after the collective that ends loop k, which rank 0
/// enters after that reset, so no loop ever sees a stale count and none needs an extra barrier.
/// Loops on one communicator must not nest (a dynamic loop inside another's function would reuse
/// the outer loop's slot).
class chunk_counter {
 public:
  /// Collective over `comm`.
  explicit chunk_counter(MPI_Comm comm);
  /// Collective: frees the window (see release()).
  ~chunk_counter();
  chunk_counter(const chunk_counter&) = delete;
  chunk_counter& operator=(const chunk_counter&) = delete;

  /// Collective in program order (not synchronizing): starts a loop on a fresh slot.
  void begin_loop();
  /// Atomically takes the next chunk index of the current loop.
  std::uint64_t next();
  /// Makes every later next() of the current loop return at least `end`: used when this rank fails,
  /// so that the others stop taking work and reach the error check quickly.
  void cancel(std::uint64_t end);
  /// Collective: frees the window now; later calls do nothing.
  void release() noexcept;

 private:
  MPI_Win window_ = MPI_WIN_NULL;
  int rank_ = 0;
  unsigned loop_ = 0;  // loops begun; the current slot is (loop_ - 1) % 2
};

}  // namespace mpiproc::detail
