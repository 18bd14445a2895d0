#pragma once

#include "chunk_counter.hpp"

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <utility>

namespace mpiproc::detail {

/// How the shared state of a communicator's objects (locks, counters, queues, the schedule
/// counter...) travels, decided once per communicator.
enum class transport {
  shared_memory,  // all ranks on one node: memory every rank maps, changed with CPU atomics
  messages,       // ranks on several nodes: a service thread in the owning process answers
};

/// The MPI communicators one mpiproc::communicator holds, kept alive by every object made on it:
/// the private duplicate its collective calls run on, and (made on first use) one more that every
/// object's point-to-point messages share, each object on tags of its own. Freed with the last
/// holder, or at MPI_Finalize.
struct communicator_handles;

/// The part of a communicator an object's messages travel on: `comm` with the tags
/// [first_tag, first_tag + count) for this object alone.
struct object_channel {
  std::shared_ptr<communicator_handles> keep;  // keeps `comm` alive while the object lives
  MPI_Comm comm = MPI_COMM_NULL;
  int first_tag = 0;
};

/// What mpiproc keeps for one communicator (all its copies share it).
class communicator_state {
 public:
  /// Collective over `user`: duplicates it with MPI_ERRORS_RETURN. usage_error without MPI or for
  /// MPI_COMM_NULL.
  explicit communicator_state(MPI_Comm user);
  /// Collective (the schedule counter's free); while an exception unwinds, leaves it instead.
  ~communicator_state();
  communicator_state(const communicator_state&) = delete;
  communicator_state& operator=(const communicator_state&) = delete;

  /// The private duplicate (communicator::native()).
  MPI_Comm comm() const noexcept;
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }

  /// Collective on the first call: how shared state travels here (see transport). Shared memory
  /// when every rank is on one node, messages otherwise; MPIPROC_TRANSPORT=messages forces
  /// messages, =shared requires one node (usage_error on every rank otherwise, and for any other
  /// value or a value that differs between ranks). MPIPROC_COUNTER is its former name.
  transport shared_state_transport();

  /// Collective (objects are made in the same order on every rank): `count` tags for a new
  /// object on the shared duplicate, the same on every rank. usage_error when MPI's tags run out.
  object_channel new_object(int count, const char* what);

  /// The schedule counter behind the dynamic and guided schedules, if made.
  chunk_counter* counter() noexcept { return counter_.get(); }
  /// Collective: that counter, made on first use (usage_error across nodes without
  /// MPI_THREAD_MULTIPLE).
  chunk_counter& make_counter(const communicator& comm);

  /// Collective, at the start of every map call (see chunk_source::prepare): counts the call.
  void begin_map_call();
  /// The channel of the running map call's progress and time-limit messages (one tag, the same
  /// on every rank; calls on a communicator never overlap).
  std::pair<MPI_Comm, int> map_call_channel();

 private:
  std::shared_ptr<communicator_handles> handles_;
  std::unique_ptr<chunk_counter> counter_;
  std::uint64_t map_calls_begun_ = 0;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace mpiproc::detail
