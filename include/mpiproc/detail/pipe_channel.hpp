#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/clock.hpp>

#include <mpi.h>

#include <cstddef>
#include <functional>
#include <memory>

namespace mpiproc::detail {

/// The untyped part of a pipe: messages between two ranks on the communicator's channels
/// duplicate, on two tags of the pipe's own: data, and a stop (the end of stream, sent when an end
/// closes, or the failed rank, sent when a rank fails in a collective call, so the other end's wait
/// ends; one tag, so that each send checks for both with one probe). Tags of its
/// own keep a dropped pipe's unread messages from ever reaching a later one. Waits poll
/// (poller.hpp's poll_until).
class pipe_channel {
 public:
  /// Collective over `comm`: ranks `first` and `second` become the two ends; with `duplex` false
  /// only `first` sends.
  pipe_channel(const communicator& comm, int first, int second, bool duplex);
  ~pipe_channel();
  pipe_channel(const pipe_channel&) = delete;
  pipe_channel& operator=(const pipe_channel&) = delete;
  /// Moves the end; a moved-from channel is a usage_error to use.
  pipe_channel(pipe_channel&&) noexcept = default;
  /// Closes this end (as the destructor does), then takes `other`'s.
  pipe_channel& operator=(pipe_channel&& other) noexcept;

  /// Whether this rank is one of the two ends.
  bool is_end() const;
  /// The rank of the other end (in the communicator the pipe was made on).
  int peer() const;
  bool can_send() const;
  bool can_recv() const;

  /// Sends `count` items of `type`; returns once the buffer may be reused. Throws if the other end
  /// closed while the message waited for it.
  void send(const void* data, std::size_t count, MPI_Datatype type);
  /// Receives a message of exactly `count` items of `type` into `data`; false at end of stream.
  bool receive_fixed(void* data, std::size_t count, MPI_Datatype type);
  /// Receives a message of any length: `place(count)` says where its items of `type` go; false at
  /// end of stream.
  bool receive_sized(MPI_Datatype type, const std::function<void*(std::size_t count)>& place);
  /// Whether a message (or the end of stream) is waiting, waiting for one until the deadline.
  bool poll(const deadline& until);
  /// Tells the other end that no more messages come; later use of this end is a usage_error.
  void close();
  bool closed() const;

  struct state;

 private:
  state& live() const;

  std::shared_ptr<state> state_;
};

/// Cancels what closed pipes on `channels` still wait to receive (see pipe_channel::close); called
/// just before the communicator frees it.
void forget_pipe_drains(MPI_Comm channels) noexcept;

}  // namespace mpiproc::detail
