#pragma once

#include <mpiproc/detail/queue_core.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace mpiproc::detail {

/// A queue on one node: a ring of slots on rank 0 of a shared segment, which any rank fills and
/// empties. An item takes one slot or, when longer than a slot's payload, several in a
/// row. Producers reserve positions and consumers claim them by compare-exchange on two counters;
/// each slot's sequence word says whose turn it is (Vyukov's bounded MPMC queue), so a producer
/// waits (sleeping) on a slot still full from the last lap; two counters of permits (items ready,
/// places left under the capacity) let consumers sleep while the queue is empty and producers
/// while it is at its capacity.
class queue_ring : public queue_core {
 public:
  /// Collective over `comm`, whose ranks share one node's memory: `slots` slots of `payload`
  /// bytes each; `capacity` items at most (0: as many as the slots hold).
  queue_ring(const communicator& comm, std::size_t slots, std::size_t payload, std::uint64_t capacity, bool joinable);

  bool put(const void* data, std::size_t bytes, const deadline& until, bool wait) override;
  outcome get(const std::function<void*(std::size_t bytes)>& place, const deadline& until, bool wait) override;
  void close() override;
  bool closed() override;
  bool ended() override;
  std::uint64_t size() override;
  bool full() override;
  void task_done() override;
  bool join(const deadline& until) override;

 private:
  std::size_t slot_at(std::uint64_t position) const;

  std::unique_ptr<shared_segment> segment_;
  std::size_t slots_, payload_;
  std::uint64_t capacity_;
  bool joinable_;
  std::byte* mapped_ = nullptr;  // the ring's memory, mapped here
};

}  // namespace mpiproc::detail
