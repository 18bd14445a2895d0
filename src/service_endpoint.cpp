#include "service_endpoint.hpp"

#include "communicator_state.hpp"
#include "registry.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <future>
#include <vector>

namespace mpiproc::detail {

using namespace segment_ops;

struct service_endpoint::state : registered {
  std::atomic<bool> broken{false};  // this rank broke it or saw an answer say it was broken
  bool released = false;
  std::shared_ptr<communicator_handles> comm_alive;  // keeps `comm` alive
  MPI_Comm comm = MPI_COMM_NULL;  // shared with the communicator's other objects, on tags of its own
  int tags = 0;                   // the first of them
  int rank = 0;
  int size = 1;
  std::vector<std::size_t> bytes;  // the memory each rank serves
  std::vector<char> serves;        // which ranks run a service for it (memory or a handler)
  std::vector<char> posted_to;    // ranks sent a post_add or a posted call since their last reply
  std::unique_ptr<std::byte[]> memory;  // what this rank serves
  std::future<void> stopped;            // this rank's service let go of `memory`
  release_vote vote;
  std::uint64_t enrolled = 0;

  void check_usable(int target) const {
    if (released)
      throw usage_error("mpiproc: shared state used after its communicator was released (the MPI environment ended)");
    if (target < 0 || target >= size)
      throw usage_error("mpiproc: shared state on rank " + std::to_string(target) + " of a communicator of " +
                        std::to_string(size));
  }

  void send(const void* data, std::size_t bytes, int target, int tag) {
    MPIPROC_CHECK(MPI_Send(data, static_cast<int>(bytes), MPI_BYTE, target, tags + tag, comm));
  }

  /// A blocking receive by polling (complete_by).
  void receive(void* out, std::size_t bytes, int source, int tag) {
    MPI_Request pending = MPI_REQUEST_NULL;
    MPIPROC_CHECK(MPI_Irecv(out, static_cast<int>(bytes), MPI_BYTE, source, tags + tag, comm, &pending));
    complete_by(pending, std::nullopt);
  }

  /// Sends a request, then its payload if any (r.a bytes).
  void send_request(int target, const request& r, const void* payload) {
    send(&r, sizeof r, target, request_tag);
    if (payload) send(payload, static_cast<std::size_t>(r.a), target, write_payload_tag);
  }

  /// Sends a request that `target` answers with a reply, or keeps (a wait, a call), and posts the
  /// receive of that reply; at the deadline it cancels the request, whose answer (kept or not)
  /// comes before the cancel's acknowledgement. Returns whether the reply came in time.
  bool exchange(int target, const request& r, const void* payload, reply& out, const deadline& until,
                MPI_Request& pending) {
    send_request(target, r, payload);
    MPIPROC_CHECK(MPI_Irecv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, &pending));
    posted_to[static_cast<std::size_t>(target)] = 0;
    if (complete_by(pending, until)) return true;
    request cancel;
    cancel.kind = op_cancel;
    send(&cancel, sizeof cancel, target, request_tag);
    complete_by(pending, std::nullopt);
    return false;
  }

  /// Breaks this endpoint for every rank (see break_shared_state); never throws.
  void poison(int failed_rank) noexcept override {
    if (released) return;
    broken = true;
    request r;
    r.kind = op_break;
    r.a = static_cast<std::uint64_t>(failed_rank) + 1;
    for (int target = 0; target < size; ++target) {
      if (!serves[static_cast<std::size_t>(target)]) continue;
      reply out;
      if (MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm) != MPI_SUCCESS) continue;
      MPI_Recv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, MPI_STATUS_IGNORE);
    }
  }

  void release() noexcept override {
    if (released) return;
    released = true;
    if (!vote.abandoned()) {
      // Every request of this rank has had its answer but the posted ones: one round trip each
      // makes sure they landed, then nobody sends to any service after the vote.
      request sync;
      sync.kind = op_sync;
      for (int target = 0; target < size; ++target)
        if (posted_to[static_cast<std::size_t>(target)]) {
          reply out;
          MPI_Send(&sync, sizeof sync, MPI_BYTE, target, tags + request_tag, comm);
          MPI_Recv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, MPI_STATUS_IGNORE);
        }
      vote.all_free(comm);
    }
    // Once every rank has voted, nobody sends requests any more: this rank's service can stop
    // serving it either way. An abandoning rank stops it here, at MPI_Finalize.
    if (stopped.valid()) {
      request stop;
      stop.kind = op_stop;
      MPI_Send(&stop, sizeof stop, MPI_BYTE, rank, tags + request_tag, comm);
      stopped.wait();
    }
  }

  /// This rank leaves while an exception unwinds: it votes no without waiting for the others'
  /// votes (see release_vote). The release registered for MPI_Finalize, which keeps this state
  /// and the vote's buffers alive, stops this rank's service then.
  void abandon() noexcept {
    if (released || vote.abandoned()) return;
    broken = true;
    vote.abandon(comm);
  }
};

service_endpoint::service_endpoint(const communicator& owner, std::size_t bytes, const void* initial, handler answer,
                                   poll_hook poll)
    : state_(std::make_shared<state>()) {
  enter_construction(owner.native(), "a lock, queue, dict or other shared object");
  open(owner, bytes, initial, std::move(answer), std::move(poll));
}

service_endpoint::service_endpoint(const communicator& owner, within_call, handler answer)
    : state_(std::make_shared<state>()) {
  open(owner, 0, nullptr, std::move(answer), {});
}

void service_endpoint::open(const communicator& owner, std::size_t bytes, const void* initial, handler answer,
                            poll_hook poll) {
  int level = MPI_THREAD_SINGLE;
  MPIPROC_CHECK(MPI_Query_thread(&level));
  if (level < MPI_THREAD_MULTIPLE)
    throw usage_error("mpiproc: over several nodes, dynamic and guided schedules, locks, counters, values and the "
                      "other shared state need MPI_THREAD_MULTIPLE (an mpiproc::environment asks for it); initialize "
                      "MPI with it, or use block or cyclic schedules");
  state& s = *state_;
  const object_channel channel = owner.state().new_object(tags_used, "lock, queue, dict or other shared object");
  s.comm_alive = channel.keep;
  s.comm = channel.comm;
  s.tags = channel.first_tag;
  s.rank = owner.rank();
  s.size = owner.size();
  const auto parts = static_cast<std::size_t>(s.size);
  s.posted_to.assign(parts, 0);
  // Each rank's {bytes, whether its service has anything else to do: calls or a poll}.
  const std::uint64_t mine[2] = {bytes, answer || poll ? 1u : 0u};
  std::vector<std::uint64_t> all(2 * parts);
  MPIPROC_CHECK(MPI_Allgather(mine, 2, MPI_UINT64_T, all.data(), 2, MPI_UINT64_T, s.comm));
  for (std::size_t r = 0; r < parts; ++r) {
    s.bytes.push_back(all[2 * r]);
    s.serves.push_back(all[2 * r] > 0 || all[2 * r + 1] != 0);
  }
  s.enrolled = enroll(owner.native(), state_);
  if (s.serves[static_cast<std::size_t>(s.rank)]) {
    s.memory.reset(new std::byte[std::max<std::size_t>(bytes, 1)]());
    if (initial) std::memcpy(s.memory.get(), initial, bytes);
    s.stopped = serve(s.comm, s.tags, s.memory.get(), std::move(answer), std::move(poll));
  }
  // Nobody may send a request before its service is listening.
  MPIPROC_CHECK(MPI_Barrier(s.comm));
}

service_endpoint::~service_endpoint() {
  if (!state_ || mpi_finalizing()) return;  // the release registered for MPI_Finalize ends it
  if (std::uncaught_exceptions() > 0)
    abandon();
  else
    release();
}

void service_endpoint::abandon() noexcept { state_->abandon(); }

void service_endpoint::release() noexcept {
  // An abandoned endpoint's vote may still be in flight: the registry keeps its state (and the
  // vote's buffers) until MPI_Finalize, whose release stops this rank's service for it.
  if (state_->vote.abandoned()) return;
  withdraw(state_->enrolled);
  state_->release();
}

int service_endpoint::rank() const noexcept { return state_->rank; }
int service_endpoint::size() const noexcept { return state_->size; }
std::size_t service_endpoint::bytes(int rank) const { return state_->bytes.at(static_cast<std::size_t>(rank)); }
bool service_endpoint::usable() const noexcept { return !state_->released; }
void service_endpoint::check_usable() const { state_->check_usable(state_->rank); }
bool service_endpoint::broken() const noexcept { return state_->broken; }

reply service_endpoint::ask(int target, const request& r, const void* payload, void* result) {
  state& s = *state_;
  s.check_usable(target);
  s.send(&r, sizeof r, target, request_tag);
  if (r.kind == op_write) s.send(payload, static_cast<std::size_t>(r.a), target, write_payload_tag);
  if (r.kind == op_post_add) {
    s.posted_to[static_cast<std::size_t>(target)] = 1;
    return {};
  }
  reply out;
  s.receive(&out, sizeof out, target, reply_tag);
  if (r.kind == op_read)
    MPIPROC_CHECK(MPI_Recv(result, static_cast<int>(r.a), MPI_BYTE, target, s.tags + read_payload_tag, s.comm,
                           MPI_STATUS_IGNORE));
  s.posted_to[static_cast<std::size_t>(target)] = 0;
  return out;
}

bool service_endpoint::wait(int target, const request& r, const deadline& until) {
  state& s = *state_;
  s.check_usable(target);
  reply out;
  MPI_Request pending = MPI_REQUEST_NULL;
  if (!s.exchange(target, r, nullptr, out, until, pending)) {
    reply ack;  // the wait's own answer came first: it says whether the wait held after all
    s.receive(&ack, sizeof ack, target, reply_tag);
  }
  if (out.ok == broken_answer) fail_broken(s.broken, out.value);
  return out.ok != 0;
}

namespace {
/// The request of a call (op_call or op_post_call) carrying `question`.
request call_request(std::uint64_t kind, const std::string& question) {
  if (question.size() > max_message) throw usage_error("mpiproc: a request of more than 1 GiB to shared state");
  return {kind, 1, 0, question.size(), 0, 0};
}
}  // namespace

void service_endpoint::post_call(int target, const std::string& question) {
  const request r = call_request(op_post_call, question);
  state& s = *state_;
  s.check_usable(target);
  s.send_request(target, r, question.data());
  s.posted_to[static_cast<std::size_t>(target)] = 1;
}

std::optional<std::string> service_endpoint::call(int target, const std::string& question, const deadline& until) {
  const request r = call_request(op_call, question);
  state& s = *state_;
  s.check_usable(target);
  reply out;
  MPI_Request pending = MPI_REQUEST_NULL;
  const bool in_time = s.exchange(target, r, question.data(), out, until, pending);
  std::string answer(out.value, '\0');
  s.receive(answer.data(), answer.size(), target, read_payload_tag);
  if (!in_time) {
    reply ack;
    s.receive(&ack, sizeof ack, target, reply_tag);
  }
  if (out.ok == broken_answer) {
    std::uint64_t mark = 0;
    std::memcpy(&mark, answer.data(), std::min(answer.size(), sizeof mark));
    fail_broken(s.broken, mark);
  }
  if (out.ok == key_error_answer) throw key_error(answer);
  if (out.ok == index_error_answer) throw index_error(answer);
  if (out.ok == failed_answer) throw error(answer);
  if (out.ok == timed_out_answer) return std::nullopt;
  return answer;
}

}  // namespace mpiproc::detail
