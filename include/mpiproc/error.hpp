#pragma once

#include <stdexcept>
#include <string>

namespace mpiproc {

/// Root of every exception mpiproc throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An MPI routine returned an error; names the routine and MPI's error string.
class mpi_error : public error {
 public:
  mpi_error(std::string routine, int code);
  /// The MPI routine that failed, e.g. "MPI_Win_allocate".
  const std::string& routine() const noexcept { return routine_; }
  /// MPI's error code.
  int code() const noexcept { return code_; }

 private:
  std::string routine_;
  int code_;
};

/// Misuse of the API (a reversed range, a chunk size of 0, ...); the message says what to do instead.
class usage_error : public error {
 public:
  using error::error;
};

/// A shared dict has no such key (at()), like Python's KeyError.
class key_error : public error {
 public:
  using error::error;
};

/// An index outside a shared list, like Python's IndexError.
class index_error : public error {
 public:
  using error::error;
};

/// A value that is not there or does not fit, like Python's ValueError: shared_list::remove or
/// index of an item the list does not hold, a slice step of 0, or a slice assignment of the wrong
/// length to an extended slice.
class value_error : public error {
 public:
  using error::error;
};

/// A barrier that was aborted, reset while ranks waited, or whose wait timed out, like Python's
/// threading.BrokenBarrierError: every wait on it throws this until reset().
class broken_barrier_error : public error {
 public:
  using error::error;
};

/// A put that found the queue full and would not wait (put_nowait, or put with a timeout that
/// passed), like Python's queue.Full.
class queue_full : public error {
 public:
  using error::error;
};

/// A get that found the queue empty and would not wait (get_nowait), like Python's queue.Empty.
class queue_empty : public error {
 public:
  using error::error;
};

/// A message longer than the buffer given to receive it (pipe recv_bytes_into, or recv_bytes with a
/// maxlength), like Python's multiprocessing.BufferTooShort. Unlike Python, whose exception carries
/// the message already taken, the message stays unread: receive it into a larger buffer or with
/// recv_bytes(); what() gives its length.
class buffer_too_short : public error {
 public:
  using error::error;
};

/// A checkpointed call (see checkpoint.hpp) stopped early because a rank received SIGTERM or
/// SIGUSR1: the chunks in hand were finished and recorded, and every rank of the call throws this.
/// Run the program again with the same checkpoint to resume; the programs in apps/ exit with
/// status 75 (EX_TEMPFAIL, "try again") on it.
class interrupted : public error {
 public:
  using error::error;
};

/// A wait that gave up: a future's get with a timeout that passed (the task goes on), or a task
/// that ran past its time limit, like Python's TimeoutError.
class timeout_error : public error {
 public:
  using error::error;
};

/// The result of a task that was cancelled before it started, like concurrent.futures'
/// CancelledError.
class cancelled_error : public error {
 public:
  using error::error;
};

/// User code threw on some rank during a collective call; every rank of that call throws this.
/// A task's future throws it too, for the rank the task ran on.
class remote_error : public error {
 public:
  remote_error(int rank, std::string message, int failed_ranks);
  /// The lowest rank whose user code threw.
  int rank() const noexcept { return rank_; }
  /// The `what()` of the original exception on that rank.
  const std::string& message() const noexcept { return message_; }
  /// How many ranks threw in the same call.
  int failed_ranks() const noexcept { return failed_ranks_; }

 private:
  int rank_;
  std::string message_;
  int failed_ranks_;
};

}  // namespace mpiproc
