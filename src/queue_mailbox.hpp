#pragma once

#include "service_endpoint.hpp"

#include <mpiproc/detail/queue_core.hpp>

#include <memory>

namespace mpiproc::detail {

/// A queue over several nodes: the items in rank 0's memory, kept by its service thread, which
/// answers each put and get of the other ranks in one round trip and keeps the calls that must
/// wait (a get while empty, a put while full) until they can go, in arrival order. Rank 0's own
/// calls take the lock and need no message unless they wait. A rank that gets alone is lent the
/// next items with the one it takes, which another rank's get takes back first (see mailbox).
class queue_mailbox : public queue_core {
 public:
  /// Collective over `comm`: at most `capacity` items (0: no limit).
  queue_mailbox(const communicator& comm, std::uint64_t capacity, bool joinable);
  ~queue_mailbox() override;

  bool put(const void* data, std::size_t bytes, const deadline& until, bool wait) override;
  outcome get(const std::function<void*(std::size_t bytes)>& place, const deadline& until, bool wait) override;
  void close() override;
  bool closed() override;
  bool ended() override;
  std::uint64_t size() override;
  bool full() override;
  void task_done() override;
  bool join(const deadline& until) override;

  struct mailbox;
  struct lease;

 private:
  std::string ask(const std::string& request, const deadline& until = std::nullopt);
  /// How many items `holder` (-1: none) holds lent and not yet taken.
  std::uint64_t held_by(int holder);
  struct state_now {
    bool closed, full;
    std::uint64_t items;  // on rank 0, without the lent ones
    int holder;           // -1: none
  };
  state_now state();

  bool joinable_;
  std::shared_ptr<mailbox> box_;  // rank 0's items; null on the other ranks
  std::shared_ptr<lease> lent_;   // the items lent to this rank; null on rank 0
  service_endpoint endpoint_;
};

}  // namespace mpiproc::detail
