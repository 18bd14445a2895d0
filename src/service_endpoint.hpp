#pragma once

#include "segment_ops.hpp"
#include "service_thread.hpp"

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/clock.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace mpiproc::detail {

/// Request and reply between the ranks of a communicator, over messages: each rank's service
/// thread (service_thread.cpp) answers what is sent to it, while the rank computes: operations
/// on the words of the memory it serves (a shared segment over several nodes) and calls to its
/// handler (the shared dict and list, the queue's mailbox). It keeps waits and calls that cannot
/// be answered yet, in arrival order; a caller whose deadline passes cancels its own.
///
/// A rank failure (break_shared_state) or a failed message breaks it: kept waits and calls, and
/// every later one that would block, end with peer_failed naming the rank.
///
/// Its messages travel on the duplicate that all objects of the communicator share, on tags of
/// its own. Needs MPI_THREAD_MULTIPLE. For one thread of each rank at a time.
class service_endpoint {
 public:
  using handler = call_handler;

  /// Collective over `comm`: this rank serves `bytes` bytes of memory (a copy of `initial`, or
  /// zeroed) and, with a handler (on every rank), calls; its service calls `poll` (if any) each
  /// round until release() or abandon().
  service_endpoint(const communicator& comm, std::size_t bytes, const void* initial, handler answer,
                   poll_hook poll = {});
  /// Collective over `comm`, inside a collective call on it whose ranks already agreed to make
  /// one here (a call's own endpoint, as item_server's): no memory, calls to `answer`.
  struct within_call {};
  service_endpoint(const communicator& comm, within_call, handler answer);
  /// Collective (see release()); while an exception unwinds, abandon() instead.
  ~service_endpoint();
  service_endpoint(const service_endpoint&) = delete;
  service_endpoint& operator=(const service_endpoint&) = delete;

  int rank() const noexcept;
  int size() const noexcept;
  /// How many bytes of memory `rank` serves.
  std::size_t bytes(int rank) const;

  /// Sends an operation on `target`'s words and returns its answer (an op_read's bytes into
  /// `result`, an op_write's from `payload`); an op_post_add returns at once (it lands before
  /// this rank's next request to `target`).
  segment_ops::reply ask(int target, const segment_ops::request& r, const void* payload = nullptr,
                         void* result = nullptr);
  /// Sends a wait (op_wait, op_wait_take) that `target` keeps until it holds: true if it held,
  /// false if the deadline passed first. Throws peer_failed if the endpoint broke.
  bool wait(int target, const segment_ops::request& r, const deadline& until);
  /// Sends `request` to `target`'s handler and returns its answer (both at most 1 GiB); nothing
  /// if the handler kept the call past the deadline. What the handler threw comes back as an
  /// error (key_error and index_error as themselves); peer_failed if the endpoint broke.
  std::optional<std::string> call(int target, const std::string& request, const deadline& until = std::nullopt);
  /// Sends `request` to `target`'s handler and returns at once: no answer comes back (what the
  /// handler answers or throws is dropped); it lands before this rank's next request to `target`.
  void post_call(int target, const std::string& request);

  /// False once released (after MPI_Finalize, for one).
  bool usable() const noexcept;
  /// usage_error once released, as every request makes.
  void check_usable() const;
  /// Whether this rank broke the endpoint or saw an answer say it was broken.
  bool broken() const noexcept;
  /// Collective: every rank's posted adds land, then every rank stops serving it. If a rank
  /// abandoned it, the services stop but nothing is freed before MPI_Finalize.
  void release() noexcept;
  /// Not collective: this rank leaves without waiting for the others (while an exception unwinds),
  /// so that their release() returns instead of waiting for it.
  void abandon() noexcept;

  struct state;

 private:
  void open(const communicator& comm, std::size_t bytes, const void* initial, handler answer, poll_hook poll);

  std::shared_ptr<state> state_;  // also held by the registry's release at MPI_Finalize
};

}  // namespace mpiproc::detail
