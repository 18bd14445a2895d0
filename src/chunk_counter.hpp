#pragma once

#include <mpiproc/detail/shared_segment.hpp>

#include <cstdint>
#include <memory>

namespace mpiproc::detail {

/// The shared "next chunk" counter of the dynamic and guided schedules: a 64-bit integer on rank 0
/// that every rank increments atomically, so no rank sits idle as a master.
///
/// It lives in a shared_segment: on one node in shared memory, taken with CPU atomics, never
/// waiting for the owner (and avoiding Open MPI 4.1's osc/rdma, which names its files by
/// communicator id, so windows made at once on the halves of one MPI_Comm_split collide); over
/// several nodes served by the owning process's service thread, since one-sided MPI over plain TCP
/// does not work with Open MPI's defaults.
///
/// Two slots alternate between consecutive loops. At the start of loop k, rank 0 zeroes the slot
/// of loop k+1; every rank reaches loop k+1 only after the collective that ends loop k, which rank 0
/// enters after that reset, so no loop ever sees a stale count and none needs an extra barrier.
/// Loops on one communicator must not nest (a dynamic loop inside another's function would reuse
/// the outer loop's slot).
class chunk_counter {
 public:
  /// Collective over `comm`.
  explicit chunk_counter(const communicator& comm);
  /// Collective: frees the counter (see release()).
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
  /// Collective: frees the counter now; later calls do nothing.
  void release() noexcept;
  /// Not collective: leaves without freeing, while an exception unwinds (see shared_segment).
  void abandon() noexcept;

 private:
  std::size_t slot() const noexcept { return (loop_ - 1) % 2 * 8; }

  std::unique_ptr<shared_segment> slots_;  // two words on rank 0
  std::uint64_t* mapped_ = nullptr;        // those words, mapped here (one node)
  int rank_ = 0;
  unsigned loop_ = 0;  // loops begun
};

}  // namespace mpiproc::detail
