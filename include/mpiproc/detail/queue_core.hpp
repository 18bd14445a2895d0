#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/clock.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace mpiproc::detail {

/// The untyped part of a queue: items as bytes. Two ways to hold them (see make_queue_core).
class queue_core {
 public:
  enum class outcome { item, timeout, ended };

  virtual ~queue_core() = default;
  /// Appends an item of `bytes` bytes, waiting while the queue is full until the deadline (none: as
  /// long as it takes; `wait` false: not at all); false if it did not go in. usage_error once closed,
  /// or for an item that the queue can never hold.
  virtual bool put(const void* data, std::size_t bytes, const deadline& until, bool wait) = 0;
  /// Takes the oldest item: `place(bytes)` says where its bytes go. Waits until the deadline
  /// (none: as long as it takes; `wait` false: not at all).
  virtual outcome get(const std::function<void*(std::size_t bytes)>& place, const deadline& until, bool wait) = 0;
  /// No more puts: consumers get ended once the items are taken. Closing again does nothing.
  virtual void close() = 0;
  virtual bool closed() = 0;
  /// Whether the queue is closed and every item taken.
  virtual bool ended() = 0;
  /// Items put and not yet taken (stale once returned while others use the queue).
  virtual std::uint64_t size() = 0;
  /// Whether a put would wait now: the capacity is reached (or, without one, the ring is full).
  virtual bool full() = 0;
  /// Joinable queues only: one item put is finished; usage_error if every item put already is.
  virtual void task_done() = 0;
  /// Joinable queues only: waits until every item put is finished, until the deadline (false then).
  virtual bool join(const deadline& until) = 0;
};

/// Collective over `comm`: on one node, a ring of `slots` slots of `payload` bytes in shared
/// memory (queue_ring), which ranks fill and empty with atomics; over several nodes (or with
/// MPIPROC_COUNTER=messages), a list of items in rank 0's memory (queue_mailbox), one round trip to
/// its service thread per put or get. At most `capacity` items (0: no limit but the ring's).
/// `joinable`: counts the items put and not yet task_done (for join).
std::unique_ptr<queue_core> make_queue_core(const communicator& comm, std::size_t slots, std::size_t payload,
                                            std::uint64_t capacity, bool joinable = false);

}  // namespace mpiproc::detail
