#include "communicator_state.hpp"
#include "registry.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/pipe_channel.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/transport.hpp>

#include <algorithm>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mpiproc::detail {

namespace {
// Messages up to this size go out at once in Open MPI (its eager limits, headers included, are 4 KiB in shared memory
// and 64 KiB over TCP), so a plain send never waits for the other end; larger ones are watched.
constexpr std::size_t eager_bytes = 1024;

/// What a closed end still has to receive from the other end, so that no message of a dropped pipe
/// stays in MPI's queue of unexpected messages for good (about 1 KB each, and every later match
/// searches past them): the data it never read, and the other end's end of stream, whenever that
/// comes. A receive is posted for the end of stream; the data is taken once it has come.
struct drain {
  MPI_Comm comm;
  int peer, data_tag, stop_tag;
  MPI_Request end;
  std::shared_ptr<int> stop = std::make_shared<int>();  // where `end` receives (the drain is copied)

  /// Receives (and drops) what has come; true once the end of stream has, with everything before it.
  bool progress() noexcept {
    int done = 0;
    if (MPI_Test(&end, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) done = 1;  // give up on a broken receive
    // Data only after the other end stopped (everything sent before is here by then): a large send
    // that waits meanwhile sees this end closed and fails, rather than seem to be received.
    if (done) {
      take_all(data_tag);
      take_all(stop_tag);  // an end of stream after a failure's notice
    }
    return done != 0;
  }

  void take_all(int tag) noexcept {
    std::vector<char> sink;
    for (;;) {
      int found = 0;
      MPI_Message message = MPI_MESSAGE_NULL;
      MPI_Status status;
      if (MPI_Improbe(peer, tag, comm, &found, &message, &status) != MPI_SUCCESS || !found) return;
      int bytes = 0;
      MPI_Get_count(&status, MPI_BYTE, &bytes);
      sink.resize(static_cast<std::size_t>(std::max(bytes, 0)));
      MPI_Mrecv(sink.data(), bytes, MPI_BYTE, &message, MPI_STATUS_IGNORE);
    }
  }

  void cancel() noexcept {
    if (end == MPI_REQUEST_NULL) return;
    MPI_Cancel(&end);
    MPI_Wait(&end, MPI_STATUS_IGNORE);
  }
};

struct drains {
  std::mutex mutex;
  std::list<drain> pending;
};

drains& the_drains() {
  static drains d;
  return d;
}

/// Moves the oldest few drains on (each pipe made or closed calls it, so the work per pipe stays
/// constant however many wait for an other end that stays open).
void progress_drains(std::list<drain>& pending) noexcept {
  for (int i = 0; i < 8 && !pending.empty(); ++i) {
    if (pending.front().progress()) {
      pending.pop_front();
    } else {
      pending.splice(pending.end(), pending, pending.begin());
    }
  }
}
}  // namespace

void forget_pipe_drains(MPI_Comm channels) noexcept {
  auto& d = the_drains();
  std::lock_guard guard(d.mutex);
  d.pending.remove_if([&](drain& x) {
    if (x.comm != channels) return false;
    x.cancel();
    return true;
  });
}

struct pipe_channel::state : registered {
  std::shared_ptr<communicator_handles> comm_alive;  // keeps `comm` alive
  MPI_Comm comm = MPI_COMM_NULL;
  // Data, and the other end's stop: its end of stream (no bytes) or its rank's failure (the failed
  // rank, an int), on one tag so that a send checks for both with one probe.
  int data_tag = 0, stop_tag = 0;
  bool stop_taken = false;  // the stop has been received:
  int failed = -1;          // the rank whose failure it reported, or -1 for an end of stream
  int peer = -1;
  bool sends = false, receives = false;
  bool closed = false;  // this end
  bool ended = false;   // the other end's end of stream has been received
  int failed_sent = 0;  // what poison() sent
  std::uint64_t enrolled = 0;

  void release() noexcept override {}  // its communicator's release frees the messages left

  void poison(int failed_rank) noexcept override {
    if (peer < 0 || closed || mpi_finalizing()) return;  // a closed end's peer no longer listens
    failed_sent = failed_rank;  // the send reads it after this returns
    MPI_Request sent = MPI_REQUEST_NULL;  // never waits for the other end
    if (MPI_Isend(&failed_sent, 1, MPI_INT, peer, stop_tag, comm, &sent) == MPI_SUCCESS) MPI_Request_free(&sent);
  }

  void check(bool allowed, const char* what) const {
    if (finalize_begun()) throw usage_error("mpiproc: a pipe used after the MPI environment ended");
    if (peer < 0) throw usage_error(std::string("mpiproc: pipe ") + what + " on a rank that is not one of its ends");
    if (closed) throw usage_error(std::string("mpiproc: pipe ") + what + " after this end was closed");
    if (!allowed)
      throw usage_error(std::string("mpiproc: pipe ") + what + " at the wrong end of a one-way pipe (the first rank "
                        "sends, the second receives)");
  }

  bool waiting(int tag) const {
    int found = 0;
    MPIPROC_CHECK(MPI_Iprobe(peer, tag, comm, &found, MPI_STATUS_IGNORE));
    return found != 0;
  }

  /// Whether the other end stopped (closed, or its rank failed): takes its stop message once it has
  /// come. Messages from one rank arrive in order, so any data sent before is already here.
  bool other_end_stopped() {
    if (stop_taken) return true;
    if (!waiting(stop_tag)) return false;
    MPI_Status status;
    MPIPROC_CHECK(MPI_Recv(&failed, 1, MPI_INT, peer, stop_tag, comm, &status));
    int count = 0;
    MPIPROC_CHECK(MPI_Get_count(&status, MPI_INT, &count));
    if (count == 0) failed = -1;
    stop_taken = true;
    return true;
  }

  /// Throws peer_failed if the other end's rank reported a failure.
  void check_broken() {
    if (other_end_stopped() && failed >= 0) throw peer_failed(failed);
  }

  /// Once other_end_stopped(): throws peer_failed if its rank failed, else ends the stream.
  void take_end() {
    check_broken();
    ended = true;
  }

  /// Stops a posted receive; false if a message completed it first (`status` then says which).
  static bool cancel(MPI_Request& pending, MPI_Status& status) {
    MPIPROC_CHECK(MPI_Cancel(&pending));
    MPIPROC_CHECK(MPI_Wait(&pending, &status));
    int cancelled = 0;
    MPIPROC_CHECK(MPI_Test_cancelled(&status, &cancelled));
    return cancelled != 0;
  }
};

pipe_channel::pipe_channel(const communicator& comm, int first, int second, bool duplex)
    : state_(std::make_shared<state>()) {
  state& s = *state_;
  const int size = comm.size(), rank = comm.rank();
  if (first < 0 || first >= size || second < 0 || second >= size || first == second)
    throw usage_error("mpiproc: a pipe joins two different ranks in [0, " + std::to_string(size) + "), not " +
                      std::to_string(first) + " and " + std::to_string(second));
  enter_construction(comm.native(), "a pipe");
  const object_channel channel = comm.state().new_object(2, "pipe");
  s.comm_alive = channel.keep;
  s.comm = channel.comm;
  s.data_tag = channel.first_tag;
  s.stop_tag = s.data_tag + 1;
  if (rank == first || rank == second) {
    s.peer = rank == first ? second : first;
    s.sends = duplex || rank == first;
    s.receives = duplex || rank == second;
  }
  s.enrolled = enroll(comm.native(), state_);
  auto& d = the_drains();
  std::lock_guard guard(d.mutex);
  progress_drains(d.pending);
}

pipe_channel::~pipe_channel() {
  if (!state_) return;
  withdraw(state_->enrolled);
  if (mpi_finalizing() || std::uncaught_exceptions() > 0) return;
  close();
}

pipe_channel& pipe_channel::operator=(pipe_channel&& other) noexcept {
  if (this == &other) return *this;
  if (state_) withdraw(state_->enrolled);
  if (state_ && !mpi_finalizing()) {
    try {
      close();
    } catch (...) {
      // as the destructor: the end goes away whatever the other end does
    }
  }
  state_ = std::move(other.state_);
  return *this;
}

pipe_channel::state& pipe_channel::live() const {
  if (!state_) throw usage_error("mpiproc::pipe: used after it was moved from");
  return *state_;
}

bool pipe_channel::is_end() const { return live().peer >= 0; }
int pipe_channel::peer() const { return live().peer; }
bool pipe_channel::can_send() const { return live().sends; }
bool pipe_channel::can_recv() const { return live().receives; }
bool pipe_channel::closed() const { return live().closed; }

void pipe_channel::send(const void* data, std::size_t count, MPI_Datatype type) {
  state& s = live();
  s.check(s.sends, "send");
  // An end that closed takes nothing more: refuse now rather than lose the message or wait for good.
  if (s.ended || s.other_end_stopped()) {
    s.check_broken();
    throw usage_error("mpiproc: pipe send to rank " + std::to_string(s.peer) + ", whose end is closed (as Python's "
                      "BrokenPipeError)");
  }
  int item_bytes = 0;
  MPIPROC_CHECK(MPI_Type_size(type, &item_bytes));
  if (count * static_cast<std::size_t>(item_bytes) <= eager_bytes) {
    MPIPROC_CHECK(MPI_Send(data, static_cast<int>(count), type, s.peer, s.data_tag, s.comm));
    return;
  }
  MPI_Request pending = MPI_REQUEST_NULL;
  MPIPROC_CHECK(MPI_Isend(data, checked_count(count, "pipe send"), type, s.peer, s.data_tag, s.comm, &pending));
  // A large message waits for the other end to take it: stop if that end closed or failed.
  if (complete_unless(pending, MPI_STATUS_IGNORE, 64, [&] { return s.other_end_stopped(); })) return;
  MPI_Cancel(&pending);
  MPI_Request_free(&pending);
  s.check_broken();
  throw usage_error("mpiproc: pipe send to rank " + std::to_string(s.peer) + ", whose end closed before taking "
                    "the message (as Python's BrokenPipeError)");
}

bool pipe_channel::receive_fixed(void* data, std::size_t count, MPI_Datatype type) {
  state& s = live();
  s.check(s.receives, "recv");
  if (s.ended) return false;
  // A receive posted at once (not probed first) is as fast as a plain MPI_Recv.
  MPI_Request pending = MPI_REQUEST_NULL;
  MPIPROC_CHECK(MPI_Irecv(data, checked_count(count, "pipe recv"), type, s.peer, s.data_tag, s.comm, &pending));
  MPI_Status status;
  if (!complete_unless(pending, &status, 16, [&] { return s.other_end_stopped(); }) &&
      state::cancel(pending, status)) {
    s.take_end();
    return false;
  }
  int got = 0;
  MPIPROC_CHECK(MPI_Get_count(&status, type, &got));
  if (static_cast<std::size_t>(got) != count)
    throw usage_error("mpiproc: a pipe message of another size than expected (the same type at both ends?)");
  return true;
}

bool pipe_channel::receive_sized(MPI_Datatype type, const std::function<void*(std::size_t count)>& place) {
  state& s = live();
  s.check(s.receives, "recv");
  if (s.ended) return false;
  MPI_Status status;
  const auto message_came = [&] {
    int found = 0;
    MPIPROC_CHECK(MPI_Iprobe(s.peer, s.data_tag, s.comm, &found, &status));
    return found != 0;
  };
  bool stopped = false;
  poll_until([&] { return message_came() || (stopped = s.other_end_stopped()); }, std::nullopt);
  if (stopped && !message_came()) {  // data sent before the end is here by now
    s.take_end();
    return false;
  }
  int count = 0;
  MPIPROC_CHECK(MPI_Get_count(&status, type, &count));
  if (count == MPI_UNDEFINED)
    throw usage_error("mpiproc: a pipe message that is not a whole number of items (the same type at both ends?)");
  void* into = place(static_cast<std::size_t>(count));
  MPIPROC_CHECK(MPI_Recv(into, count, type, s.peer, s.data_tag, s.comm, MPI_STATUS_IGNORE));
  return true;
}

bool pipe_channel::poll(const deadline& until) {
  state& s = live();
  s.check(s.receives, "poll");
  return poll_until(
      [&] {
        if (s.ended || s.waiting(s.data_tag)) return true;
        s.check_broken();
        return s.other_end_stopped();  // the end of stream: a recv returns at once
      },
      until);
}

void pipe_channel::close() {
  state& s = live();
  if (s.closed || s.peer < 0 || mpi_finalizing()) return;
  s.closed = true;
  MPI_Request sent = MPI_REQUEST_NULL;  // the other end may never read it
  MPIPROC_CHECK(MPI_Isend(nullptr, 0, MPI_BYTE, s.peer, s.stop_tag, s.comm, &sent));
  MPIPROC_CHECK(MPI_Request_free(&sent));
  auto& d = the_drains();
  std::lock_guard guard(d.mutex);
  drain x{s.comm, s.peer, s.data_tag, s.stop_tag, MPI_REQUEST_NULL};
  if (!s.stop_taken) {  // the other end's stop, and what it sent before, are still to come
    MPIPROC_CHECK(MPI_Irecv(x.stop.get(), 1, MPI_INT, s.peer, s.stop_tag, s.comm, &x.end));
    if (!x.progress()) d.pending.push_back(x);
  } else if (!s.ended) {
    x.take_all(s.data_tag);  // the stop came, so all that was sent before it is here: unread, dropped
  }
  progress_drains(d.pending);
}

}  // namespace mpiproc::detail
