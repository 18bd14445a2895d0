#pragma once

#include <mpi.h>

#include <cstdint>

namespace mpiproc::detail {

/// The shared "next chunk" counter of the dynamic and guided schedules: a 64-bit integer on rank 0
/// that every rank increments atomically, so no rank sits idle as a master.
///
/// When all ranks share one node's memory, the counter lives in a shared-memory window
/// (MPI_Win_allocate_shared) and ranks increment it with CPU atomics, the fastest path and one
/// that never waits for the owner. Otherwise it is an RMA window served by MPI_Fetch_and_op.
/// (Open MPI 4.1's osc/rdma, which MPI_Win_allocate picks by default, names its shared-memory files
/// by communicator id, so windows created at once on the halves of one MPI_Comm_split collide and
/// fail: the shared-memory window avoids that too.)
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
  /// Whether the counter lives in node-shared memory (else it is served by MPI RMA).
  bool in_shared_memory() const noexcept { return shared_ != nullptr; }

 private:
  void store(MPI_Aint slot, std::uint64_t value);

  MPI_Win window_ = MPI_WIN_NULL;
  std::uint64_t* shared_ = nullptr;  // rank 0's slots, mapped into every rank, when on one node
  int rank_ = 0;
  unsigned loop_ = 0;  // loops begun; the current slot is (loop_ - 1) % 2
};

}  // namespace mpiproc::detail
