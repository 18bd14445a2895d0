#pragma once

#include <mpi.h>

#include <cstdint>
#include <thread>

namespace mpiproc::detail {

/// The shared "next chunk" counter of the dynamic and guided schedules: a 64-bit integer on rank 0
/// that every rank increments atomically, so no rank sits idle as a master.
///
/// Three ways to hold it, chosen when it is created (the same on every rank):
/// - shared: all ranks share one node's memory; the counter lives in a shared-memory window
///   (MPI_Win_allocate_shared) and ranks increment it with CPU atomics. The fastest path, and one
///   that never waits for the owner. (It also avoids Open MPI 4.1's osc/rdma, which names its files
///   by communicator id, so windows made at once on the halves of one MPI_Comm_split collide.)
/// - messages: ranks on several nodes, where one-sided MPI over plain TCP does not work with Open
///   MPI's defaults; a thread on the owner answers requests, so a chunk is handed out even while the
///   owner is busy in user code. Needs MPI_THREAD_MULTIPLE.
/// - rma: an RMA window served by MPI_Fetch_and_op, for networks with working one-sided MPI.
/// Several nodes use messages unless MPIPROC_COUNTER=rma; MPIPROC_COUNTER=messages forces messages
/// on one node too (tests and benchmarks of that path).
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
  enum class path { shared, messages, rma };
  path kind() const noexcept { return path_; }

 private:
  void store(MPI_Aint slot, std::uint64_t value);
  void serve() noexcept;  // the owner's service thread (messages path)

  path path_ = path::shared;
  MPI_Win window_ = MPI_WIN_NULL;    // shared and rma
  std::uint64_t* shared_ = nullptr;  // rank 0's slots as mapped here (shared), or owned (messages)
  std::uint64_t owned_[2] = {0, 0};  // the owner's slots on the messages path
  MPI_Comm service_ = MPI_COMM_NULL; // messages: requests and replies
  std::thread server_;               // messages: on the owner only
  int rank_ = 0;
  unsigned loop_ = 0;  // loops begun; the current slot is (loop_ - 1) % 2
};

}  // namespace mpiproc::detail
