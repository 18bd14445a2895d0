#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/clock.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/error.hpp>

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mpiproc::detail {

class service_endpoint;
namespace segment_ops {
struct request;
struct reply;
}  // namespace segment_ops

/// What a wait waits for: (word & mask) == value, != value, or >= value (unsigned).
enum class wait_test : std::uint64_t { equal, not_equal, at_least };

/// Memory that every rank of a communicator reads and changes atomically: each rank contributes
/// some bytes (often only rank 0 does), addressed as (rank, byte offset). The rank-wide locks,
/// semaphores, counters, values and arrays are built on it.
///
/// Two ways to hold it, chosen once per communicator (the same on every rank; see
/// communicator_state::shared_state_transport):
/// - shared: all ranks on one node; memory that every rank maps and changes with CPU atomics. A
///   rank that waits spins briefly, then sleeps on a futex in that memory that every change wakes,
///   so waiting ranks give their core to the rank they wait for (4 ranks on 2 cores). The memory is
///   an anonymous file (memfd) that the others open through rank 0's /proc/<pid>/fd: never named
///   in /dev/shm, so a rank killed at any moment leaves no file behind. Where a rank cannot open
///   it (another pid namespace), or with MPIPROC_SHARED_MEMORY=window, an MPI_Win_allocate_shared
///   window instead (Open MPI names its file in /dev/shm until every rank has mapped it).
/// - messages: ranks on several nodes, where one-sided MPI over plain TCP does not work with Open
///   MPI's defaults; each rank's memory is served by a service_endpoint (src/service_endpoint.hpp):
///   one thread per process answers the requests while the rank computes, and keeps waits until
///   they hold. Needs MPI_THREAD_MULTIPLE.
/// MPIPROC_TRANSPORT=messages forces messages on one node too (for tests and benchmarks).
///
/// Its messages travel on the duplicate that all objects of the communicator share, on tags of
/// its own, so making one costs no MPI_Comm_dup.
///
/// Atomic operations take a width of 1, 2, 4 or 8 bytes at an offset aligned to it; waits and
/// take() use 8-byte words. A segment is for one thread of each rank at a time.
class shared_segment {
 public:
  /// Collective over `comm`: this rank contributes `bytes` bytes, a copy of `initial` or zeroed.
  shared_segment(const communicator& comm, std::size_t bytes, const void* initial = nullptr);
  /// Collective over `comm`, on one node: `bytes` of address space reserved on rank 0, whose pages
  /// come (zeroed) as they are first touched, so it may be as large as the node's memory. Only the
  /// anonymous mapping does that: where it cannot be made (or the transport is messages), the
  /// segment holds no memory and mapped_word(0, 0) gives nullptr on every rank.
  struct reserve_tag {};
  shared_segment(const communicator& comm, reserve_tag, std::size_t bytes);
  /// Collective (see release()); while an exception unwinds, abandon() instead.
  ~shared_segment();
  shared_segment(const shared_segment&) = delete;
  shared_segment& operator=(const shared_segment&) = delete;

  int rank() const noexcept;
  int size() const noexcept;
  /// How many bytes `rank` contributed.
  std::size_t bytes(int rank) const;

  std::uint64_t load(int rank, std::size_t offset, unsigned width = 8);
  void store(int rank, std::size_t offset, std::uint64_t value, unsigned width = 8);
  std::uint64_t exchange(int rank, std::size_t offset, std::uint64_t value, unsigned width = 8);
  /// Adds with wrap-around at `width` bytes; returns the previous value.
  std::uint64_t fetch_add(int rank, std::size_t offset, std::uint64_t value, unsigned width = 8);
  /// Adds without waiting for the change to be made (it lands before any later request of this
  /// rank to the same rank), so the messages path spends no round trip on it.
  void post_add(int rank, std::size_t offset, std::uint64_t value);
  /// If the word holds `expected`, stores `desired`; otherwise loads it into `expected`.
  bool compare_exchange(int rank, std::size_t offset, std::uint64_t& expected, std::uint64_t desired,
                        unsigned width = 8);
  /// Raises the word to `value` if it is below.
  void raise_to(int rank, std::size_t offset, std::uint64_t value);
  /// Adds `amount` unless that would take the word past `limit`; returns whether it did.
  bool add_up_to(int rank, std::size_t offset, std::uint64_t amount, std::uint64_t limit);
  /// Subtracts `amount` if the word holds at least that much; returns whether it did. With a wait,
  /// blocks until it can (FIFO among waiters on the messages path) or the deadline passes.
  bool take(int rank, std::size_t offset, std::uint64_t amount);
  bool wait_take(int rank, std::size_t offset, std::uint64_t amount, const deadline& until);
  /// Blocks until the word passes the test (true) or the deadline passes (false).
  bool wait(int rank, std::size_t offset, std::uint64_t mask, wait_test test, std::uint64_t value,
            const deadline& until);

  /// Plain (not atomic as a whole) copies of bytes.
  void read(int rank, std::size_t offset, void* out, std::size_t bytes);
  void write(int rank, std::size_t offset, const void* in, std::size_t bytes);

  /// The shared path's fast lane: the 8-byte word itself, mapped here (nullptr on the messages
  /// path). Whoever changes it directly must call changed() after, to wake sleeping waiters, and
  /// check usable() before each use: the mapping ends with release().
  std::uint64_t* mapped_word(int rank, std::size_t offset);
  /// Throws peer_failed if another rank's failure broke the segment (for waits of one's own on
  /// mapped words).
  void throw_if_broken();
  void changed(int rank, std::size_t offset);
  /// False once released (after MPI_Finalize, for one).
  bool usable() const noexcept;
  /// Whether this rank broke the segment or saw a wait end because it was broken.
  bool broken() const noexcept;

  /// Collective: frees the window or leaves the service; later operations throw usage_error. If a
  /// rank abandoned the segment, nobody frees it (it stays until the program ends) and this returns.
  void release() noexcept;
  /// Not collective: this rank leaves the segment without freeing it (its destructor does this
  /// while an exception unwinds), so that the other ranks' release() returns instead of waiting.
  void abandon() noexcept;
  /// Whether this segment uses the messages path.
  bool by_messages() const noexcept;

  struct state;

 private:
  void map_on_node(const communicator& comm, std::size_t bytes, const void* initial, bool reserve_only);
  void check(int target, const segment_ops::request& r) const;
  [[noreturn, gnu::cold]] void refuse(int target, const segment_ops::request& r) const;
  segment_ops::reply apply_to(int target, const segment_ops::request& r, const void* payload = nullptr,
                              void* result = nullptr);
  bool wait_for(int target, const segment_ops::request& r, const deadline& until);

  int rank_ = 0;
  std::vector<std::size_t> sizes_;  // what each rank contributed
  std::shared_ptr<state> local_;    // the shared path's memory; also held by the registry to the end
  std::unique_ptr<service_endpoint> remote_;  // the messages path
};

}  // namespace mpiproc::detail
