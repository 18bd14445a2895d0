#include "service_thread.hpp"

#include <mpiproc/detail/poller.hpp>
#include <mpiproc/error.hpp>

#include <sched.h>
#include <unistd.h>

#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mpiproc::detail {

using namespace segment_ops;

namespace {

// One thread per process answers the requests for every endpoint this process serves. It starts
// with the first and ends with the last.

class service {
 public:
  static service& instance() {
    static service s;
    return s;
  }

  /// Starts serving `memory` and `handler` to the ranks of `comm`; the future is ready once a stop
  /// request (sent by this process to itself) has been handled.
  std::future<void> add(MPI_Comm comm, int tags, std::byte* memory, call_handler handler, poll_hook poll) {
    auto e = std::make_unique<entry>();
    e->poll = std::move(poll);
    e->comm = comm;
    e->tags = tags;
    e->memory = memory;
    e->handler = std::move(handler);
    auto stopped = e->stopped.get_future();
    std::lock_guard guard(mutex_);
    added_.push_back(std::move(e));
    if (!running_) {
      if (thread_.joinable()) thread_.join();
      running_ = true;
      thread_ = std::thread([this] { loop(); });
    }
    return stopped;
  }

  ~service() {
    if (thread_.joinable()) thread_.detach();  // only if MPI never finalized; nothing left to serve
  }

 private:
  struct waiter {
    int source;
    request r;
  };
  struct kept_call {
    int source;
    std::string request;
  };
  struct entry {
    MPI_Comm comm = MPI_COMM_NULL;
    int tags = 0;  // the first of the endpoint's tags on `comm`
    std::byte* memory = nullptr;
    call_handler handler;  // answers op_call
    poll_hook poll;        // called each round, if any
    request incoming;
    MPI_Request pending = MPI_REQUEST_NULL;
    std::list<waiter> waits;     // in arrival order
    std::list<kept_call> calls;  // calls the handler said to keep, in arrival order
    std::uint64_t broken = 0;  // 1 + the failed rank, once broken
    std::promise<void> stopped;
  };

  /// Waits for the next request (MPI_REQUEST_NULL where that failed: tried again next round).
  static void post(entry& e) {
    if (MPI_Irecv(&e.incoming, sizeof(request), MPI_BYTE, MPI_ANY_SOURCE, e.tags + request_tag, e.comm, &e.pending) !=
        MPI_SUCCESS)
      e.pending = MPI_REQUEST_NULL;
  }

  /// A message to or from `peer` failed: nobody may wait on this endpoint for an answer that
  /// cannot come, so it breaks as if `peer` had failed (see op_break); every wait held, and every
  /// later one that would block, ends with peer_failed naming it.
  static void fail(entry& e, int peer) noexcept {
    if (!e.broken) e.broken = static_cast<std::uint64_t>(peer) + 1;
    auto waits = std::move(e.waits);
    auto calls = std::move(e.calls);
    e.waits.clear();
    e.calls.clear();
    for (const waiter& w : waits) answer(e, w.source, {e.broken, broken_answer});
    for (const kept_call& c : calls) answer_call(e, c.source, broken_mark(e), broken_answer);
  }

  /// Sends an answer; a failed send breaks the endpoint (see fail).
  static void answer(entry& e, int to, const reply& out) noexcept {
    if (MPI_Send(&out, sizeof(reply), MPI_BYTE, to, e.tags + reply_tag, e.comm) != MPI_SUCCESS) fail(e, to);
  }

  /// A call's answer: the reply, then its bytes.
  static void answer_call(entry& e, int to, const std::string& bytes, std::uint64_t ok) noexcept {
    answer(e, to, {bytes.size(), ok});
    if (MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, to, e.tags + read_payload_tag, e.comm) !=
        MPI_SUCCESS)
      fail(e, to);
  }

  /// Receives a request's payload; false (the endpoint broken) if that failed.
  static bool receive_payload(entry& e, int from, void* into, std::uint64_t bytes) noexcept {
    if (MPI_Recv(into, static_cast<int>(bytes), MPI_BYTE, from, e.tags + write_payload_tag, e.comm,
                 MPI_STATUS_IGNORE) == MPI_SUCCESS)
      return true;
    fail(e, from);
    return false;
  }

  /// A broken call's answer: the broken word.
  static std::string broken_mark(const entry& e) { return std::string(reinterpret_cast<const char*>(&e.broken), 8); }

  /// Runs the handler on a call; false if it said to keep the call for later.
  static bool try_call(entry& e, int source, const std::string& request) {
    std::optional<std::string> out;
    std::uint64_t ok = 1;
    try {
      out = e.handler(source, request);
      if (!out) return false;
      if (out->size() > max_message) throw usage_error("mpiproc: an answer of more than 1 GiB");
    } catch (const std::exception& failure) {
      out = failure.what();
      ok = dynamic_cast<const key_error*>(&failure)     ? key_error_answer
           : dynamic_cast<const index_error*>(&failure) ? index_error_answer
                                                        : failed_answer;
    }
    answer_call(e, source, *out, ok);
    return true;
  }

  /// After a call changed the handler's state, kept calls may go through: in arrival order, again
  /// while any did.
  static void retry_kept_calls(entry& e) {
    for (bool any = true; any;) {
      any = false;
      for (auto it = e.calls.begin(); it != e.calls.end();)
        if (try_call(e, it->source, it->request)) {
          it = e.calls.erase(it);
          any = true;
        } else {
          ++it;
        }
    }
  }

  /// Serves one request; returns false when it was the stop.
  bool handle(entry& e, int source) {
    const request r = e.incoming;
    if (r.kind == op_stop) return false;
    if (r.kind == op_sync) {
      answer(e, source, {});
      return true;
    }
    if (r.kind == op_break) {
      // Another rank failed: every wait now held, and every later one that would block, ends.
      if (!e.broken) e.broken = r.a;
      for (const waiter& w : e.waits) answer(e, w.source, {e.broken, broken_answer});
      e.waits.clear();
      for (const kept_call& c : e.calls) answer_call(e, c.source, broken_mark(e), broken_answer);
      e.calls.clear();
      answer(e, source, {});
      return true;
    }
    if (r.kind == op_cancel) {
      for (auto it = e.waits.begin(); it != e.waits.end(); ++it)
        if (it->source == source) {
          answer(e, source, {0, 0});
          e.waits.erase(it);
          break;
        }
      for (auto it = e.calls.begin(); it != e.calls.end(); ++it)
        if (it->source == source) {
          answer_call(e, source, {}, timed_out_answer);
          e.calls.erase(it);
          break;
        }
      answer(e, source, {});  // the cancel's own answer, after the wait's
      return true;
    }
    if (r.kind == op_post_call) {
      // No answer goes back: the caller only needs it to land before its next request here.
      std::string in(r.a, '\0');
      if (!receive_payload(e, source, in.data(), r.a)) return true;
      try {
        e.handler(source, in);
      } catch (const std::exception&) {  // nobody to tell: a posted call's handler does not throw
      }
      retry_kept_calls(e);
      return true;
    }
    if (r.kind == op_call) {
      std::string in(r.a, '\0');
      if (!receive_payload(e, source, in.data(), r.a)) return true;
      if (try_call(e, source, in))
        retry_kept_calls(e);
      else if (e.broken)
        answer_call(e, source, broken_mark(e), broken_answer);
      else
        e.calls.push_back({source, std::move(in)});
      return true;
    }
    std::vector<std::byte> payload;
    if (r.kind == op_read || r.kind == op_write) payload.resize(r.a);
    if (r.kind == op_write && !receive_payload(e, source, payload.data(), r.a)) return true;
    bool changed = false;
    const reply out = apply(e.memory, r, payload.data(), payload.data(), changed);
    if ((r.kind == op_wait || r.kind == op_wait_take) && !out.ok && e.broken)
      answer(e, source, {e.broken, broken_answer});
    else if ((r.kind == op_wait || r.kind == op_wait_take) && !out.ok)
      e.waits.push_back({source, r});
    else if (r.kind != op_post_add)
      answer(e, source, out);
    if (r.kind == op_read &&
        MPI_Send(payload.data(), static_cast<int>(r.a), MPI_BYTE, source, e.tags + read_payload_tag, e.comm) !=
            MPI_SUCCESS)
      fail(e, source);
    // A change may let waiters through: answer them in arrival order.
    while (changed) {
      changed = false;
      for (auto it = e.waits.begin(); it != e.waits.end();) {
        bool took = false;
        const reply ready = apply(e.memory, it->r, nullptr, nullptr, took);
        if (!ready.ok) {
          ++it;
          continue;
        }
        answer(e, it->source, ready);
        it = e.waits.erase(it);
        changed = changed || took;
      }
    }
    return true;
  }

  void loop() {
    // mpirun binds each rank to a core when ranks fit the cores: this thread would then share
    // the core with its rank's own busy thread, and answer only when that one yields (about
    // 1 ms a request). It does little work, so let it run on any core.
    cpu_set_t any;
    CPU_ZERO(&any);
    for (long cpu = 0, n = sysconf(_SC_NPROCESSORS_ONLN); cpu < n && cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &any);
    sched_setaffinity(0, sizeof any, &any);  // best effort: a cpuset may keep it where it is
    std::list<std::unique_ptr<entry>> active;
    poller idle = poller::for_service();
    for (;;) {
      {
        std::lock_guard guard(mutex_);
        for (auto& e : added_) {
          post(*e);
          active.push_back(std::move(e));
        }
        added_.clear();
        if (active.empty()) {
          running_ = false;
          return;
        }
      }
      bool served = false;
      for (auto it = active.begin(); it != active.end();) {
        entry& e = **it;
        int done = 0;
        MPI_Status status;
        if (e.poll && e.poll()) served = true;
        if (e.pending == MPI_REQUEST_NULL) post(e);  // the last post failed: try again
        if (e.pending == MPI_REQUEST_NULL) {
          ++it;
          continue;
        }
        if (MPI_Test(&e.pending, &done, &status) != MPI_SUCCESS) e.pending = MPI_REQUEST_NULL;
        if (!done) {
          ++it;
          continue;
        }
        served = true;
        if (handle(e, status.MPI_SOURCE)) {
          post(e);
          ++it;
        } else {
          e.stopped.set_value();
          it = active.erase(it);
        }
      }
      if (served)
        idle.restart();
      else
        idle.pause();
    }
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<entry>> added_;
  bool running_ = false;
  std::thread thread_;
};

}  // namespace

std::future<void> serve(MPI_Comm comm, int tags, std::byte* memory, call_handler handler, poll_hook poll) {
  return service::instance().add(comm, tags, memory, std::move(handler), std::move(poll));
}

}  // namespace mpiproc::detail
