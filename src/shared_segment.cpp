#include "communicator_state.hpp"
#include "registry.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <list>
#include <mutex>
#include <sched.h>
#include <string>
#include <thread>
#include <vector>

namespace mpiproc::detail {

// ---------------------------------------------------------------------------------------------
// Operations, applied the same way to mapped shared memory and by the messages path's service.

namespace {

/// One operation; the messages path sends it as it is.
struct request {
  std::uint64_t kind = 0, width = 8, offset = 0, a = 0, b = 0, c = 0;
};

enum : std::uint64_t {
  op_load, op_store, op_exchange, op_fetch_add, op_post_add, op_compare_exchange, op_raise, op_add_up_to, op_take,
  op_wait, op_wait_take, op_read, op_write, op_cancel, op_sync, op_break, op_stop, op_call
};
// The tags are offsets from the first of the segment's own. Payloads get a tag per direction: a rank's client and service threads both receive payloads
// from the same peer, and one tag would let a read's data land in a write's receive.
constexpr int request_tag = 0, reply_tag = 1, write_payload_tag = 2, read_payload_tag = 3, tags_used = 4;
// Shared path: each rank's header holds 8 sleeping places (futex word and sleeper count), then the
// broken word (0, or 1 + the rank whose failure broke the segment).
constexpr std::size_t places = 8;
constexpr std::size_t header_bytes = 128;
constexpr std::size_t broken_at = 8 * places;
constexpr std::uint64_t broken_answer = 2;  // a wait's answer (ok) when the segment broke
// A call's answer (ok) when its handler threw (an error, a key_error or an index_error), or when
// it was kept waiting past its deadline.
constexpr std::uint64_t failed_answer = 3, key_error_answer = 4, index_error_answer = 5, timed_out_answer = 6;
constexpr std::size_t max_message = std::size_t{1} << 30;

struct reply {
  std::uint64_t value = 0, ok = 1;
};

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "shared state needs lock-free 64-bit atomics, which work across processes");

/// Atomic operations that may change the word (when they succeed).
bool modifies(std::uint64_t kind) {
  return kind == op_store || kind == op_exchange || kind == op_fetch_add || kind == op_post_add ||
         kind == op_compare_exchange || kind == op_raise || kind == op_add_up_to || kind == op_take ||
         kind == op_wait_take;
}

bool passes(std::uint64_t word, const request& r) {
  const std::uint64_t masked = word & r.a;
  switch (static_cast<wait_test>(r.c)) {
    case wait_test::equal: return masked == r.b;
    case wait_test::not_equal: return masked != r.b;
    case wait_test::at_least: return masked >= r.b;
  }
  return false;
}

template <class U>
reply apply_atomic(std::byte* at, const request& r) {
  std::atomic_ref<U> word(*reinterpret_cast<U*>(at));
  switch (r.kind) {
    case op_load: return {word.load(), 1};
    case op_store: word.store(static_cast<U>(r.a)); return {};
    case op_exchange: return {word.exchange(static_cast<U>(r.a)), 1};
    case op_fetch_add:
    case op_post_add: return {word.fetch_add(static_cast<U>(r.a)), 1};
    case op_compare_exchange: {
      U expected = static_cast<U>(r.a);
      const bool ok = word.compare_exchange_strong(expected, static_cast<U>(r.b));
      return {expected, ok ? 1u : 0u};
    }
    default: break;
  }
  // The rest work on 8-byte words only.
  std::atomic_ref<std::uint64_t> word64(*reinterpret_cast<std::uint64_t*>(at));
  std::uint64_t seen = word64.load();
  switch (r.kind) {
    case op_raise:
      while (seen < r.a && !word64.compare_exchange_weak(seen, r.a)) {
      }
      return {seen, seen < r.a ? 1u : 0u};
    case op_add_up_to:
      for (;;) {
        if (r.a > r.b || seen > r.b - r.a) return {seen, 0};
        if (word64.compare_exchange_weak(seen, seen + r.a)) return {seen, 1};
      }
    case op_take:
    case op_wait_take:
      for (;;) {
        if (seen < r.a) return {seen, 0};
        if (word64.compare_exchange_weak(seen, seen - r.a)) return {seen, 1};
      }
    case op_wait: return {seen, passes(seen, r) ? 1u : 0u};
    default: return {0, 0};
  }
}

/// Applies `r` at `data` (the owner's memory); `payload` is what a write writes, `result` where a
/// read reads to. Sets `changed` when memory may have changed.
reply apply(std::byte* data, const request& r, const void* payload, void* result, bool& changed) {
  std::byte* at = data + r.offset;
  changed = false;
  if (r.kind == op_read) {
    std::memcpy(result, at, r.a);
    return {};
  }
  if (r.kind == op_write) {
    std::memcpy(at, payload, r.a);
    changed = true;
    return {};
  }
  reply out;
  switch (r.width) {
    case 1: out = apply_atomic<std::uint8_t>(at, r); break;
    case 2: out = apply_atomic<std::uint16_t>(at, r); break;
    case 4: out = apply_atomic<std::uint32_t>(at, r); break;
    default: out = apply_atomic<std::uint64_t>(at, r); break;
  }
  changed = modifies(r.kind) && out.ok;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Waiting without burning a core.

/// Sleeps while *word == expected (until woken, or for at most `timeout`).
void futex_wait(std::uint32_t* word, std::uint32_t expected, const deadline& until) {
  timespec relative{};
  timespec* timeout = nullptr;
  if (until) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*until - clock::now()).count();
    if (left <= 0) return;
    relative.tv_sec = static_cast<time_t>(left / 1'000'000'000);
    relative.tv_nsec = static_cast<long>(left % 1'000'000'000);
    timeout = &relative;
  }
  // Not FUTEX_PRIVATE: the word is in memory shared between processes.
  syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0);
}

void futex_wake_all(std::uint32_t* word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0); }

// ---------------------------------------------------------------------------------------------
// The messages path's service: one thread per process answers the requests for every segment
// whose memory this process holds. It starts with the first such segment and ends with the last.

class service {
 public:
  static service& instance() {
    static service s;
    return s;
  }

  /// Starts serving `memory` to the ranks of `comm`; the future is ready once a stop request
  /// (sent by this process to itself) has been handled.
  std::future<void> add(MPI_Comm comm, int tags, std::byte* memory, shared_segment::handler handler) {
    auto e = std::make_unique<entry>();
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
    int tags = 0;  // the first of the segment's tags on `comm`
    std::byte* memory = nullptr;
    shared_segment::handler handler;  // answers op_call
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

  /// A message to or from `peer` failed: nobody may wait on this segment for an answer that
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

  /// Sends an answer; a failed send breaks the segment (see fail).
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

  /// Receives a request's payload; false (the segment broken) if that failed.
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
    poller idle;
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

// ---------------------------------------------------------------------------------------------

namespace {
/// Where rank 0's memory is, for the others: its pid and descriptor, and the file's identity (in
/// another pid namespace the same pid could be another process).
struct memory_ticket {
  std::int64_t pid = -1, fd = -1, device = 0, inode = 0;
};

/// Collective over `comm` (all on one node): `total` bytes of zeroed memory that every rank maps,
/// or nullptr on every rank if any rank could not map it. An anonymous file (memfd) that rank 0
/// makes and the others open through /proc/<pid>/fd: it has no name in /dev/shm or anywhere, so a
/// rank killed at any moment, even while the others are still opening it, leaves no file behind;
/// the kernel frees the memory with the last mapping. (MPI_Win_allocate_shared's file is named in
/// /dev/shm until every rank has mapped it: a rank killed meanwhile left it there for good.)
/// MPIPROC_SHARED_MEMORY=window on any rank makes every rank use the window instead.
std::byte* map_anonymous(MPI_Comm comm, int rank, std::size_t total) {
  const char* choice = std::getenv("MPIPROC_SHARED_MEMORY");
  const bool wanted = !(choice && std::string(choice) == "window");
  memory_ticket ticket;
  int fd = -1;
  if (rank == 0 && wanted) {
    fd = static_cast<int>(::memfd_create("mpiproc", MFD_CLOEXEC));
    struct stat st {};
    if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(total)) == 0 && ::fstat(fd, &st) == 0)
      ticket = {::getpid(), fd, static_cast<std::int64_t>(st.st_dev), static_cast<std::int64_t>(st.st_ino)};
  }
  MPIPROC_CHECK(MPI_Bcast(&ticket, 4, MPI_INT64_T, 0, comm));
  if (rank != 0 && wanted && ticket.fd >= 0) {
    const std::string path = "/proc/" + std::to_string(ticket.pid) + "/fd/" + std::to_string(ticket.fd);
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || static_cast<std::int64_t>(st.st_dev) != ticket.device ||
                    static_cast<std::int64_t>(st.st_ino) != ticket.inode)) {
      ::close(fd);
      fd = -1;
    }
  }
  void* base = MAP_FAILED;
  if (fd >= 0 && ticket.fd >= 0) base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mine = base != MAP_FAILED ? 1 : 0;
  int everyone = 0;
  const int rc = MPI_Allreduce(&mine, &everyone, 1, MPI_INT, MPI_MIN, comm);
  if (fd >= 0) ::close(fd);  // every rank has opened it, or given up: the mappings keep the memory
  if (rc == MPI_SUCCESS && everyone) return static_cast<std::byte*>(base);
  if (base != MAP_FAILED) ::munmap(base, total);
  check(rc, "MPI_Allreduce");
  return nullptr;
}
}  // namespace

struct shared_segment::state : registered {
  std::atomic<bool> broken{false};  // this rank broke it or saw a wait end broken
  bool remote = false;
  bool answers_calls = false;  // every rank's service answers call()s (and keeps some)
  bool released = false;
  object_channel channel;          // keeps `comm` alive
  MPI_Comm comm = MPI_COMM_NULL;   // shared with the communicator's other objects, on tags of its own
  int tags = 0;                    // the first of them
  MPI_Win window = MPI_WIN_NULL;  // shared, where the anonymous memory could not be mapped
  std::byte* mapped = nullptr;    // shared: every rank's memory, anonymous, mapped here
  std::size_t mapped_bytes = 0;
  std::vector<std::byte*> bases;  // shared: each rank's memory (after its header) as mapped here
  std::vector<std::size_t> sizes;
  std::unique_ptr<std::byte[]> owned;  // messages: this rank's memory
  std::future<void> stopped;           // messages: the service let go of `owned`
  std::vector<char> posted_to;         // messages: ranks sent a post_add since their last reply
  std::uint64_t enrolled = 0;
  int rank = 0;
  int size = 1;

  void check_usable(int target, const request& r) const {
    if (released)
      throw usage_error("mpiproc: shared state used after its communicator was released (the MPI environment ended)");
    if (target < 0 || target >= size)
      throw usage_error("mpiproc: shared state on rank " + std::to_string(target) + " of a communicator of " +
                        std::to_string(size));
    if (r.kind == op_call) return;
    const std::uint64_t extent = (r.kind == op_read || r.kind == op_write) ? r.a : r.width;
    if (r.offset + extent > sizes[static_cast<std::size_t>(target)] || r.offset % r.width != 0)
      throw usage_error("mpiproc: shared state access out of bounds");
  }

  // Each rank's header holds 8 sleeping places {change count, sleepers}; the word at offset o
  // uses place (o / 8) % 8, so that a change wakes only the ranks waiting on nearby words.
  static std::size_t place(std::size_t offset) { return (offset / 8) % places; }
  std::uint32_t* futex_word(int target, std::size_t offset) const {
    return reinterpret_cast<std::uint32_t*>(bases[target] - header_bytes) + 2 * place(offset);
  }
  std::uint32_t* waiter_count(int target, std::size_t offset) const { return futex_word(target, offset) + 1; }

  /// Wakes whoever sleeps on the places [first, last) of `target`'s header.
  void wake_places(int target, std::size_t first, std::size_t last) const {
    for (std::size_t p = first; p < last; ++p) {
      if (std::atomic_ref<std::uint32_t>(*waiter_count(target, p * 8)).load() == 0) continue;
      std::atomic_ref<std::uint32_t>(*futex_word(target, p * 8)).fetch_add(1);
      futex_wake_all(futex_word(target, p * 8));
    }
  }

  void wake(int target, const request& r) const {
    if (r.kind != op_write) return wake_places(target, place(r.offset), place(r.offset) + 1);
    // A bulk write may span every place. A plain copy is not ordered before the sleepers' count
    // is read, so fence it as the atomic operations are.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wake_places(target, 0, places);
  }

  reply call(int target, const request& r, const void* payload = nullptr, void* result = nullptr) {
    check_usable(target, r);
    if (!remote) {
      bool changed = false;
      const reply out = apply(bases[target], r, payload, result, changed);
      if (changed) wake(target, r);
      return out;
    }
    MPIPROC_CHECK(MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm));
    if (r.kind == op_write)
      MPIPROC_CHECK(MPI_Send(payload, static_cast<int>(r.a), MPI_BYTE, target, tags + write_payload_tag, comm));
    if (r.kind == op_post_add) {
      posted_to[target] = 1;
      return {};
    }
    reply out;
    receive(&out, sizeof out, target, tags + reply_tag);
    if (r.kind == op_read)
      MPIPROC_CHECK(MPI_Recv(result, static_cast<int>(r.a), MPI_BYTE, target, tags + read_payload_tag, comm, MPI_STATUS_IGNORE));
    posted_to[target] = 0;
    return out;
  }

  /// A blocking receive by polling (complete_by).
  void receive(void* out, std::size_t bytes, int source, int tag) {
    MPI_Request pending = MPI_REQUEST_NULL;
    MPIPROC_CHECK(MPI_Irecv(out, static_cast<int>(bytes), MPI_BYTE, source, tag, comm, &pending));
    complete_by(pending, std::nullopt);
  }

  /// Remembers that this rank saw the segment broken, and says so.
  [[noreturn]] void fail_broken(std::uint64_t mark) {
    broken = true;
    throw peer_failed(static_cast<int>(mark - 1));
  }

  bool wait(int target, const request& r, const deadline& until) {
    check_usable(target, r);
    return remote ? wait_remote(target, r, until) : wait_shared(target, r, until);
  }

  /// Spins briefly, then yields for 100 us (the rank it waits for may need this core), then
  /// sleeps on a futex word that every change to the words it covers bumps while anyone sleeps.
  bool wait_shared(int target, const request& r, const deadline& until) {
    const auto attempt = [&] {
      bool changed = false;
      const reply out = apply(bases[target], r, nullptr, nullptr, changed);
      if (changed) wake(target, r);
      return out.ok != 0;
    };
    std::atomic_ref<std::uint64_t> broken(*reinterpret_cast<std::uint64_t*>(bases[target] - header_bytes + broken_at));
    for (int i = 0; i < 64; ++i) {
      if (attempt()) return true;
      cpu_relax();
    }
    const auto yield_until = clock::now() + std::chrono::microseconds(100);
    while (clock::now() < yield_until) {
      if (attempt()) return true;
      if (const std::uint64_t mark = broken.load()) fail_broken(mark);
      sched_yield();
    }
    std::atomic_ref<std::uint32_t> sleepers(*waiter_count(target, r.offset));
    std::atomic_ref<std::uint32_t> changes(*futex_word(target, r.offset));
    sleepers.fetch_add(1);
    bool ok = false;
    std::uint64_t failed = 0;
    for (;;) {
      const std::uint32_t seen = changes.load();
      if (attempt()) {
        ok = true;
        break;
      }
      if ((failed = broken.load()) != 0) break;
      if (until && clock::now() >= *until) break;
      futex_wait(futex_word(target, r.offset), seen, until);
    }
    sleepers.fetch_sub(1);
    if (failed) fail_broken(failed);
    return ok;
  }

  /// Breaks this segment for every rank (see break_shared_state); never throws.
  void poison(int failed_rank) noexcept override {
    if (released) return;
    broken = true;
    const std::uint64_t mark = static_cast<std::uint64_t>(failed_rank) + 1;
    for (int target = 0; target < size; ++target) {
      if (sizes[static_cast<std::size_t>(target)] == 0 && !answers_calls) continue;
      if (!remote) {
        std::byte* header = bases[static_cast<std::size_t>(target)] - header_bytes;
        std::uint64_t none = 0;
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(header + broken_at)).compare_exchange_strong(none, mark);
        wake_places(target, 0, places);
        continue;
      }
      request r;
      r.kind = op_break;
      r.a = mark;
      reply out;
      if (MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm) != MPI_SUCCESS) continue;
      MPI_Recv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, MPI_STATUS_IGNORE);
    }
  }

  /// The owner's service keeps the wait until it holds; at the deadline this rank cancels it, and
  /// the wait's answer says whether it held after all.
  bool wait_remote(int target, const request& r, const deadline& until) {
    MPIPROC_CHECK(MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm));
    reply out;
    MPI_Request pending = MPI_REQUEST_NULL;
    MPIPROC_CHECK(MPI_Irecv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, &pending));
    if (!complete_by(pending, until)) {
      request cancel;
      cancel.kind = op_cancel;
      reply ack;
      MPIPROC_CHECK(MPI_Send(&cancel, sizeof cancel, MPI_BYTE, target, tags + request_tag, comm));
      complete_by(pending, std::nullopt);
      receive(&ack, sizeof ack, target, tags + reply_tag);
    }
    posted_to[target] = 0;
    if (out.ok == broken_answer) fail_broken(out.value);
    return out.ok != 0;
  }

  /// Collective but never stranded: whether every rank frees the segment, decided by polling an
  /// allreduce in which a rank that left its scope by an exception (abandon()) says no. The ranks
  /// that say yes have all made their last request, so it also ends the use of the services.
  bool all_free() noexcept {
    const int mine = 0;
    int any_abandoned = 1;
    MPI_Request pending = MPI_REQUEST_NULL;
    if (MPI_Iallreduce(&mine, &any_abandoned, 1, MPI_INT, MPI_MAX, comm, &pending) != MPI_SUCCESS) return false;
    try {
      complete_by(pending, std::nullopt);
    } catch (...) {
      return false;
    }
    return any_abandoned == 0;
  }

  void release() noexcept override {
    if (released) return;
    released = true;
    if (remote && !abandoned) {
      // Every request of this rank has had its answer but the posted adds: one round trip each
      // makes sure they landed, then nobody sends to any service after the agreement.
      request sync;
      sync.kind = op_sync;
      for (int target = 0; target < size; ++target)
        if (posted_to[target]) {
          reply out;
          MPI_Send(&sync, sizeof sync, MPI_BYTE, target, tags + request_tag, comm);
          MPI_Recv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, MPI_STATUS_IGNORE);
        }
    }
    // Once every rank has voted, nobody sends requests any more: this rank's service can stop
    // serving the segment either way. An abandoning rank stops it at MPI_Finalize.
    const bool everyone_frees = !abandoned && all_free();
    if (remote && owned) {
      request stop;
      stop.kind = op_stop;
      MPI_Send(&stop, sizeof stop, MPI_BYTE, rank, tags + request_tag, comm);
      stopped.wait();
    }
    if (!everyone_frees) return;  // a rank abandoned it: the memory stays to the end
    if (!remote && window != MPI_WIN_NULL) MPI_Win_free(&window);
    if (mapped) ::munmap(mapped, mapped_bytes);
    mapped = nullptr;
  }

  /// This rank leaves the segment while an exception unwinds: the other ranks may never reach a
  /// collective free, so it votes against freeing without waiting for their votes (their
  /// release() then keeps the memory too). The release registered for MPI_Finalize, which keeps
  /// this state and the vote's buffers alive, stops this rank's service for it then.
  void abandon() noexcept {
    if (released || abandoned) return;
    abandoned = true;
    broken = true;
    abandon_vote = 1;
    MPI_Iallreduce(&abandon_vote, &abandon_result, 1, MPI_INT, MPI_MAX, comm, &abandon_request);
  }

  bool abandoned = false;
  int abandon_vote = 0, abandon_result = 0;
  MPI_Request abandon_request = MPI_REQUEST_NULL;
};

shared_segment::shared_segment(const communicator& owner, std::size_t bytes, const void* initial, handler answer)
    : state_(std::make_shared<state>()) {
  enter_construction(owner.native(), "a lock, queue or other shared object");
  state& s = *state_;
  s.channel = owner.state().new_object(tags_used, "lock, queue or other shared object");
  s.comm = s.channel.comm;
  s.tags = s.channel.first_tag;
  s.rank = owner.rank();
  s.size = owner.size();
  s.enrolled = enroll(owner.native(), state_);
  const auto parts = static_cast<std::size_t>(s.size);
  s.sizes.resize(parts);
  const std::uint64_t mine = bytes;
  MPIPROC_CHECK(MPI_Allgather(&mine, 1, MPI_UINT64_T, s.sizes.data(), 1, MPI_UINT64_T, s.comm));
  s.answers_calls = static_cast<bool>(answer);
  s.remote = owner.state().shared_state_transport() == transport::messages || s.answers_calls;
  s.posted_to.assign(parts, 0);
  if (s.remote) {
    int level = MPI_THREAD_SINGLE;
    MPIPROC_CHECK(MPI_Query_thread(&level));
    if (level < MPI_THREAD_MULTIPLE)
      throw usage_error("mpiproc: over several nodes, dynamic and guided schedules, locks, counters, values and the "
                        "other shared state need MPI_THREAD_MULTIPLE (an mpiproc::environment asks for it); initialize "
                        "MPI with it, or use block or cyclic schedules");
    if (bytes > 0 || answer) {
      s.owned.reset(new std::byte[std::max<std::size_t>(bytes, 1)]());
      if (initial) std::memcpy(s.owned.get(), initial, bytes);
      s.stopped = service::instance().add(s.comm, s.tags, s.owned.get(), std::move(answer));
    }
  } else {
    // Each rank's part: its header and bytes in whole cache lines, so that every part stays
    // aligned, one after another.
    const auto part_bytes = [](std::size_t n) { return n > 0 ? (n + header_bytes + 63) / 64 * 64 : 0; };
    std::size_t total = 0;
    for (const std::size_t n : s.sizes) total += part_bytes(n);
    s.bases.assign(parts, nullptr);
    if (total > 0) s.mapped = map_anonymous(s.comm, s.rank, total);
    if (s.mapped) {
      s.mapped_bytes = total;
      std::size_t offset = 0;
      for (std::size_t r = 0; r < parts; ++r) {
        if (s.sizes[r] > 0) s.bases[r] = s.mapped + offset + header_bytes;
        offset += part_bytes(s.sizes[r]);
      }
      if (bytes > 0 && initial) std::memcpy(s.bases[static_cast<std::size_t>(s.rank)], initial, bytes);
    } else if (total > 0) {
      std::byte* base = nullptr;
      const auto local = static_cast<MPI_Aint>(part_bytes(bytes));
      MPIPROC_CHECK(MPI_Win_allocate_shared(local, 1, MPI_INFO_NULL, s.comm, &base, &s.window));
      if (local > 0) std::memset(base, 0, static_cast<std::size_t>(local));
      if (local > 0 && initial) std::memcpy(base + header_bytes, initial, bytes);
      for (int r = 0; r < s.size; ++r) {
        MPI_Aint size = 0;
        int unit = 0;
        std::byte* mapped = nullptr;
        MPIPROC_CHECK(MPI_Win_shared_query(s.window, r, &size, &unit, &mapped));
        s.bases[r] = size > 0 ? mapped + header_bytes : nullptr;
      }
    }
  }
  // Nobody may touch the memory before its owner has zeroed it.
  MPIPROC_CHECK(MPI_Barrier(s.comm));
}

shared_segment::~shared_segment() {
  if (mpi_finalizing()) return;  // the release registered for MPI_Finalize frees it
  // While an exception unwinds, this rank may be the only one here: the others' frees must not
  // wait for it.
  if (std::uncaught_exceptions() > 0)
    abandon();
  else
    release();
}

void shared_segment::abandon() noexcept { state_->abandon(); }

void shared_segment::release() noexcept {
  withdraw(state_->enrolled);
  state_->release();
}

bool shared_segment::by_messages() const noexcept { return state_->remote; }
bool shared_segment::usable() const noexcept { return !state_->released; }
bool shared_segment::broken() const noexcept { return state_->broken; }
int shared_segment::rank() const noexcept { return state_->rank; }
int shared_segment::size() const noexcept { return state_->size; }
std::size_t shared_segment::bytes(int rank) const { return state_->sizes.at(static_cast<std::size_t>(rank)); }

namespace {
request make(std::uint64_t kind, std::size_t offset, unsigned width, std::uint64_t a = 0, std::uint64_t b = 0,
             std::uint64_t c = 0) {
  if (width != 1 && width != 2 && width != 4 && width != 8)
    throw usage_error("mpiproc: atomic width must be 1, 2, 4 or 8 bytes");
  return {kind, width, offset, a, b, c};
}
}  // namespace

std::uint64_t shared_segment::load(int rank, std::size_t offset, unsigned width) {
  return state_->call(rank, make(op_load, offset, width)).value;
}
void shared_segment::store(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  state_->call(rank, make(op_store, offset, width, value));
}
std::uint64_t shared_segment::exchange(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  return state_->call(rank, make(op_exchange, offset, width, value)).value;
}
std::uint64_t shared_segment::fetch_add(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  return state_->call(rank, make(op_fetch_add, offset, width, value)).value;
}
void shared_segment::post_add(int rank, std::size_t offset, std::uint64_t value) {
  state_->call(rank, make(op_post_add, offset, 8, value));
}
bool shared_segment::compare_exchange(int rank, std::size_t offset, std::uint64_t& expected, std::uint64_t desired,
                                      unsigned width) {
  const reply out = state_->call(rank, make(op_compare_exchange, offset, width, expected, desired));
  expected = out.value;
  return out.ok != 0;
}
void shared_segment::raise_to(int rank, std::size_t offset, std::uint64_t value) {
  state_->call(rank, make(op_raise, offset, 8, value));
}
bool shared_segment::add_up_to(int rank, std::size_t offset, std::uint64_t amount, std::uint64_t limit) {
  return state_->call(rank, make(op_add_up_to, offset, 8, amount, limit)).ok != 0;
}
bool shared_segment::take(int rank, std::size_t offset, std::uint64_t amount) {
  return state_->call(rank, make(op_take, offset, 8, amount)).ok != 0;
}
bool shared_segment::wait_take(int rank, std::size_t offset, std::uint64_t amount, const deadline& until) {
  return state_->wait(rank, make(op_wait_take, offset, 8, amount), until);
}
bool shared_segment::wait(int rank, std::size_t offset, std::uint64_t mask, wait_test test, std::uint64_t value,
                          const deadline& until) {
  return state_->wait(rank, make(op_wait, offset, 8, mask, value, static_cast<std::uint64_t>(test)), until);
}

std::uint64_t* shared_segment::mapped_word(int rank, std::size_t offset) {
  if (state_->remote) return nullptr;
  state_->check_usable(rank, make(op_load, offset, 8));
  return reinterpret_cast<std::uint64_t*>(state_->bases[static_cast<std::size_t>(rank)] + offset);
}

void shared_segment::changed(int rank, std::size_t offset) { state_->wake(rank, make(op_store, offset, 8)); }

std::optional<std::string> shared_segment::call(int rank, const std::string& question, const deadline& until) {
  if (question.size() > max_message) throw usage_error("mpiproc: a request of more than 1 GiB to shared state");
  state& s = *state_;
  const request r{op_call, 1, 0, question.size(), 0, 0};
  s.check_usable(rank, r);
  MPIPROC_CHECK(MPI_Send(&r, sizeof r, MPI_BYTE, rank, s.tags + request_tag, s.comm));
  MPIPROC_CHECK(MPI_Send(question.data(), static_cast<int>(question.size()), MPI_BYTE, rank, s.tags + write_payload_tag, s.comm));
  reply out;
  MPI_Request pending = MPI_REQUEST_NULL;
  MPIPROC_CHECK(MPI_Irecv(&out, sizeof out, MPI_BYTE, rank, s.tags + reply_tag, s.comm, &pending));
  const bool in_time = complete_by(pending, until);
  if (!in_time) {  // the answer, kept or not, comes before the cancel's acknowledgement
    request cancel;
    cancel.kind = op_cancel;
    MPIPROC_CHECK(MPI_Send(&cancel, sizeof cancel, MPI_BYTE, rank, s.tags + request_tag, s.comm));
    complete_by(pending, std::nullopt);
  }
  std::string answer(out.value, '\0');
  s.receive(answer.data(), answer.size(), rank, s.tags + read_payload_tag);
  if (!in_time) {
    reply ack;
    s.receive(&ack, sizeof ack, rank, s.tags + reply_tag);
  }
  s.posted_to[rank] = 0;
  if (out.ok == broken_answer) {
    std::uint64_t mark = 0;
    std::memcpy(&mark, answer.data(), std::min(answer.size(), sizeof mark));
    s.fail_broken(mark);
  }
  if (out.ok == key_error_answer) throw key_error(answer);
  if (out.ok == index_error_answer) throw index_error(answer);
  if (out.ok == failed_answer) throw error(answer);
  if (out.ok == timed_out_answer) return std::nullopt;
  return answer;
}

void shared_segment::read(int rank, std::size_t offset, void* out, std::size_t bytes) {
  auto* to = static_cast<std::byte*>(out);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t piece = std::min(bytes - done, max_message);
    request r{op_read, 1, offset + done, piece, 0, 0};
    state_->call(rank, r, nullptr, to + done);
    done += piece;
  }
}

void shared_segment::write(int rank, std::size_t offset, const void* in, std::size_t bytes) {
  const auto* from = static_cast<const std::byte*>(in);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t piece = std::min(bytes - done, max_message);
    request r{op_write, 1, offset + done, piece, 0, 0};
    state_->call(rank, r, from + done);
    done += piece;
  }
}

}  // namespace mpiproc::detail
