#include "service_endpoint.hpp"

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/pool_core.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <thread>

namespace mpiproc::detail {

namespace {
// The pool's messages between ranks travel on its own communicator, each starting with its
// kind. The main thread takes them while it waits in the pool, so that a task or a result goes
// straight from one rank's main thread to the other's; the service thread (the endpoint's poll)
// takes steals while the rank computes (see main_thread_is).
enum : std::uint64_t {
  kind_task,     // a task placed on the receiver, to run there
  kind_steal,    // a thief asks for tasks: how many kinds of task it has defined
  kind_stolen,   // the answer: a count, then the tasks oldest first (or pool_left, then a rank)
  kind_results,  // outcomes of tasks the receiver submitted: a count, then each
  kind_left,     // the sender left the pool without close(): the rank whose leaving ended its part
  kind_closing,  // the sender is in close()
  kind_long,     // a message longer than short_message follows on its channel's long tag: its size
};
// Two channels, each with a receive posted ahead of its next message (cheaper than a probe): work
// (tasks placed, results), which waits for the main thread, and stealing (the rest).
enum channel : int { work, stealing, channels };
constexpr int short_tag(int c) { return c; }
constexpr int long_tag(int c) { return channels + c; }
// What each thread of a rank writes often sits in a cache line of its own, so that another
// thread's reads do not slow its writes.
constexpr std::size_t line = 64;
int channel_of(std::uint64_t kind) { return kind == kind_task || kind == kind_results ? work : stealing; }
// The size of a posted receive: a longer message comes in two, its announcement then itself.
constexpr std::size_t short_message = 64 * 1024;
// A thief takes up to half the victim's queue, at most this many, oldest first.
constexpr std::size_t steal_most = 1024;
// A rank running other ranks' tasks sends their results back in batches of this many, or
// sooner when it has nothing left to run.
constexpr std::size_t results_batch = 64;
// A steal's answer from a rank that left the pool without close(): this count, then the rank
// whose failure ended the pool there.
constexpr std::uint64_t pool_left = ~std::uint64_t{0};
// Once every other rank answered a steal with nothing, an idle rank asks again after a pause
// that doubles from the first to the last (and starts over once a steal brings tasks).
constexpr std::chrono::microseconds steal_pause_first{20}, steal_pause_last{2000};
// A rank running its own tasks looks for messages (steals to answer, results) after this many:
// an MPI call costs a few tasks' time, and more with more ranks than cores (Open MPI yields the
// core in each call that finds nothing); the service thread answers steals while tasks run.
constexpr int runs_between_looks = 256;
// A task running this long has the service thread answer steals for its rank.
constexpr std::chrono::microseconds long_task{200};
// close() tests its wave of counts once in this many looks.
constexpr unsigned wave_looks = 16;
// A rank lets go of its completed sends once this many are in flight.
constexpr std::size_t sends_kept = 32;
// A rank that waits in the pool with nothing to do spins for idle_spin, reading the clock every
// idle_clock_rounds looks, then yields until idle_yield, then sleeps between looks for a nap that
// doubles from the first to the last.
constexpr std::uint64_t idle_clock_rounds = 64;
constexpr std::chrono::microseconds idle_spin{20};
constexpr std::chrono::milliseconds idle_yield{2};
constexpr std::chrono::microseconds idle_nap_first{20}, idle_nap_last{2000};

/// A task waiting in a rank's queue.
struct queued_task {
  std::uint64_t id = 0;
  int submitter = 0;
  std::uint32_t function = 0;
  std::uint64_t signature = 0;
  deadline limit;  // on this rank's clock
  double limit_seconds = 0;
  std::string args;
  bool placed = false;  // task_options::rank named this rank: it runs here, no thief takes it
};

void put_task(byte_writer& out, const queued_task& t) {
  // The time left, not the deadline: ranks on other hosts have other steady clocks.
  const std::int64_t left =
      t.limit ? std::chrono::duration_cast<std::chrono::nanoseconds>(*t.limit - clock::now()).count() : -1;
  out.number(t.id).number(static_cast<std::uint64_t>(t.submitter)).number(t.function).number(t.signature);
  out.put(std::max<std::int64_t>(left, t.limit ? 0 : -1)).put(t.limit_seconds).bytes(t.args);
}

queued_task get_task(byte_reader& in) {
  queued_task t;
  t.id = in.number();
  t.submitter = static_cast<int>(in.number());
  t.function = static_cast<std::uint32_t>(in.number());
  t.signature = in.number();
  const auto left = in.get<std::int64_t>();
  if (left >= 0) t.limit = clock::now() + std::chrono::nanoseconds(left);
  t.limit_seconds = in.get<double>();
  t.args = in.bytes();
  return t;
}

/// A task's outcome, as a message brings it to its submitter.
struct outcome {
  std::uint64_t id = 0;
  task_status status = task_status::done;
  int where = 0;           // the rank it ran on
  std::string_view bytes;  // in the message
};

std::string seconds_text(double s) {
  std::string text = std::to_string(s);
  text.erase(text.find_last_not_of('0') + 1);
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

/// The outcome's text of a task whose result came, or did not, after its time limit.
std::string past_limit(double seconds) {
  return "mpiproc: the task ran past its time limit of " + seconds_text(seconds) + " s";
}
}  // namespace

struct pool_core::shared {
  alignas(line) std::mutex lock;  // queue, outgoing and the steal's state
  std::condition_variable activity;  // a task, a result or an answer arrived (see arrived())
  std::atomic<std::uint64_t> arrivals{0};
  std::deque<queued_task> queue;     // oldest first
  // The tasks submitted here, unsettled: pending[id - pending_first] (null once settled), ids
  // being given in order; settled ones leave from the front. Under a lock of its own, since the
  // service thread may settle while the rank submits.
  alignas(line) std::mutex pending_lock;
  std::deque<std::shared_ptr<task_state>> pending;
  std::uint64_t pending_first = 0;

  /// Takes task `id`'s state out of `pending` (pending_lock held): null if it is not there.
  std::shared_ptr<task_state> unpend(std::uint64_t id) {
    if (id < pending_first || id - pending_first >= pending.size()) return nullptr;
    std::shared_ptr<task_state> state = std::move(pending[id - pending_first]);
    while (!pending.empty() && !pending.front()) {
      pending.pop_front();
      ++pending_first;
    }
    return state;
  }
  std::vector<std::pair<std::size_t, byte_writer>> outgoing;  // results to send, per submitter: count, bytes
  // Read without the lock, so that an idle rank's look costs no lock: the queue's length, and the
  // results held in `outgoing`.
  std::atomic<std::size_t> queued{0}, held{0};
  std::vector<runner> runners;
  std::vector<std::uint64_t> signatures;
  // Counted for close()'s end: tasks submitted here, their outcomes known here, steal requests
  // this rank sent, their answers it took.
  std::atomic<std::uint64_t> created{0}, settled{0}, asked{0}, answered{0};
  std::uint64_t next_id = 0;
  // Stealing, under `lock`: one request out at a time, to the ranks in turn.
  bool asking = false;
  int victim = 0;
  int empty_answers = 0;  // in a row
  clock::duration steal_pause{0};
  clock::time_point steal_after{};
  bool steals_stopped = false;  // close(): a wave found every task settled
  // Sends in flight, with the bytes MPI reads (each string stays where it is until its send
  // completes). Completed ones are let go of a batch at a time: each MPI call costs a
  // round trip's fraction, so none is spent on them at every send.
  alignas(line) std::mutex sending;
  std::deque<std::pair<MPI_Request, std::string>> sends;  // oldest first; a deque moves none
  MPI_Comm comm = MPI_COMM_NULL;  // the pool's own: its messages, and close()'s waves
  // Each channel's receive posted ahead (persistent: started again after each message), and its
  // buffer, until unpost(). One thread at a time tests them: the main thread while it looks, the
  // service thread otherwise (see work_lock).
  MPI_Request posted[channels] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  std::vector<char> inbox[channels];
  bool listening = false;
  // A task placed on this rank that work_until's look took (while `direct`): it runs next, without
  // going through the queue (main thread only).
  std::optional<queued_task> next_task;
  bool direct = false;
  std::unique_ptr<service_endpoint> endpoint;  // its service thread polls `comm` for this rank
  bool closed = false;
  bool closing = false;  // in close()
  std::atomic<int> left{-1};  // a rank that left the pool without close()
  std::atomic<bool> abandoned{false};  // this rank left it
  // Where the main thread is, which says what the service thread takes (poll_for_main):
  enum main_thread_is : int {
    computing,  // outside the pool: the service thread takes steals and their answers
    looking,    // waiting in the pool, awake: it takes every message itself
    running,    // running a task in the pool: the service thread takes steals and their answers
    napping,    // waiting in the pool, asleep: the service thread takes every message and wakes it
  };
  alignas(line) std::atomic<int> main{computing};
  // Who tests a channel's receive holds its lock: the work channel's is the main thread's while
  // it looks or runs a task, the stealing channel's whoever gets it first (never held across a
  // task, so steals are answered while the rank runs one).
  alignas(line) std::mutex work_lock;
  alignas(line) std::mutex steal_lock;
  std::atomic<std::uint64_t> tasks_run{0};  // tasks this rank started
  // The service thread's: the task it saw running, since when.
  std::uint64_t seen_task = ~std::uint64_t{0};
  clock::time_point seen_since{};

  /// Moves the main thread to `to`, returning where it was.
  int move_main(int to) {
    const auto holds = [](int where) { return where == looking || where == running; };
    const int was = main.load(std::memory_order_relaxed);  // only this thread writes it
    if (holds(to) && !holds(was)) work_lock.lock();
    // The locks order what matters, but for a nap: then the store comes before the main thread's
    // look at `arrivals` (as arrived()'s count comes before its look at `main`), so that one of
    // the two sees the other and no wakeup is lost.
    main.store(to, to == napping ? std::memory_order_seq_cst : std::memory_order_release);
    if (!holds(to) && holds(was)) work_lock.unlock();
    return was;
  }
  std::atomic<int> closers{0};  // other ranks in close()
  // close()'s wave in flight: kept here, since MPI writes `sums` until it completes.
  MPI_Request wave = MPI_REQUEST_NULL;
  std::uint64_t mine[4] = {}, sums[4] = {};
  int rank = 0, size = 1;

  ~shared() {
    if (sends.empty()) return;
    // Left without close(): MPI may still read what it sends to ranks that never take it, so the
    // bytes stay until the process ends.
    static auto* kept = new std::deque<std::pair<MPI_Request, std::string>>;
    static std::mutex keeping;
    std::lock_guard guard(keeping);
    for (auto& send : sends) kept->push_back(std::move(send));
  }

  /// Sends `message` (its kind first) to `to` without waiting.
  void send(int to, std::string message) {
    if (message.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw usage_error("mpiproc: task_pool: a task's arguments or results of more than 2 GiB in one message");
    std::uint64_t kind = 0;
    std::memcpy(&kind, message.data(), sizeof kind);
    const int c = channel_of(kind);
    std::lock_guard guard(sending);
    if (sends.size() >= sends_kept) reap();
    if (message.size() > short_message) {
      auto& [request, bytes] = sends.emplace_back(MPI_REQUEST_NULL, byte_writer().number(kind_long).number(message.size()).take());
      MPIPROC_CHECK(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, to, short_tag(c), comm, &request));
    }
    const int tag = message.size() > short_message ? long_tag(c) : short_tag(c);
    auto& [request, bytes] = sends.emplace_back(MPI_REQUEST_NULL, std::move(message));
    MPIPROC_CHECK(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, to, tag, comm, &request));
  }
  /// Lets go of the oldest sends, up to the first that has not completed (`sending` held): one
  /// MPI call tests them all.
  void reap() {
    reaping.clear();
    for (const auto& [request, bytes] : sends) reaping.push_back(request);
    reaped.resize(reaping.size());
    int count = 0;
    MPIPROC_CHECK(MPI_Testsome(static_cast<int>(reaping.size()), reaping.data(), &count, reaped.data(),
                               MPI_STATUSES_IGNORE));
    for (std::size_t k = 0; k < reaping.size(); ++k) sends[k].first = reaping[k];  // completed: null
    while (!sends.empty() && sends.front().first == MPI_REQUEST_NULL) sends.pop_front();
  }
  std::vector<MPI_Request> reaping;  // reap's, kept for their room
  std::vector<int> reaped;

  void record_left(int gone) {
    int expected = -1;
    left.compare_exchange_strong(expected, gone);
  }

  /// Counts something that arrived (a task, an outcome, an answer) and wakes the main thread if
  /// it naps: it looks at `arrivals` before it naps, under `lock`.
  void arrived() {
    arrivals.fetch_add(1);
    if (main.load() != napping) return;
    std::lock_guard guard(lock);
    activity.notify_all();
  }

  /// Records the outcome of a task submitted here whose state left `pending`.
  void fill(task_state& state, task_status status, int where, std::string_view bytes) {
    std::lock_guard guard(state.lock);
    if (state.status.load() != task_status::pending) return;
    state.rank = where;
    if (state.limit && clock::now() >= *state.limit && status != task_status::cancelled) {
      // Too late, even where nobody looked at the future in time.
      state.bytes = past_limit(state.limit_seconds);
      status = task_status::timed_out;
    } else {
      state.bytes = bytes;
    }
    state.status.store(status);
  }

  /// Records an outcome of a task submitted here.
  void settle(std::uint64_t id, task_status status, int where, std::string_view bytes) {
    std::shared_ptr<task_state> state;
    {
      std::lock_guard guard(pending_lock);
      state = unpend(id);
    }
    if (state) fill(*state, status, where, bytes);
    settled.fetch_add(1);
    arrived();
  }

  /// Records the outcomes a message brings (`in` after its count), their states taken out of
  /// `pending` under one lock.
  void settle(byte_reader& in, std::uint64_t count) {
    if (count == 1) {
      const std::uint64_t id = in.number();
      const auto status = static_cast<task_status>(in.number());
      const auto where = static_cast<int>(in.number());
      settle(id, status, where, in.bytes_view());
      return;
    }
    std::vector<outcome> outcomes(count);
    for (outcome& o : outcomes) {
      o.id = in.number();
      o.status = static_cast<task_status>(in.number());
      o.where = static_cast<int>(in.number());
      o.bytes = in.bytes_view();
    }
    std::vector<std::shared_ptr<task_state>> states(outcomes.size());
    {
      std::lock_guard guard(pending_lock);
      for (std::size_t k = 0; k < outcomes.size(); ++k) states[k] = unpend(outcomes[k].id);
    }
    for (std::size_t k = 0; k < outcomes.size(); ++k)
      if (states[k]) fill(*states[k], outcomes[k].status, outcomes[k].where, outcomes[k].bytes);
    settled.fetch_add(outcomes.size());
    arrived();
  }

  /// Answers a thief: up to half this rank's queue (at most steal_most), oldest first, of the
  /// tasks it has defined already (ranks define the same tasks, not at once) and no placed one.
  void answer_steal(int thief, std::uint64_t defined) {
    if (abandoned.load()) {
      const int gone = left.load() >= 0 ? left.load() : rank;
      send(thief, byte_writer().number(kind_stolen).number(pool_left).number(static_cast<std::uint64_t>(gone)).take());
      return;
    }
    // Moved out under the lock, encoded after it: the rank's own thread may be submitting.
    std::vector<queued_task> taken, passed;
    {
      std::lock_guard guard(lock);
      const std::size_t most = std::min(steal_most, (queue.size() + 1) / 2);
      while (!queue.empty() && taken.size() < most && taken.size() + passed.size() < 4 * steal_most) {
        queued_task& t = queue.front();
        (t.placed || t.function >= defined ? passed : taken).push_back(std::move(t));
        queue.pop_front();
      }
      for (auto t = passed.rbegin(); t != passed.rend(); ++t) queue.push_front(std::move(*t));
      queued.store(queue.size());
    }
    byte_writer out;
    out.number(kind_stolen).number(taken.size());
    for (const queued_task& t : taken) put_task(out, t);
    send(thief, out.take());
  }

  /// Takes a steal's answer: its tasks into the queue; the next steal waits, if every rank had
  /// nothing.
  void take_stolen(byte_reader& in) {
    const std::uint64_t got = in.number();
    {
      std::lock_guard guard(lock);
      if (got == pool_left) {
        record_left(static_cast<int>(in.number()));
      } else {
        // The oldest runs first here (run_local takes the back); the newest are the first given away.
        for (std::uint64_t k = 0; k < got; ++k) queue.push_front(get_task(in));
        queued.store(queue.size());
      }
      asking = false;
      if (got == 0) {  // the next request goes to the next rank; a victim with tasks is asked again
        victim = (victim + 1) % size;
        if (victim == rank) victim = (victim + 1) % size;
      }
      if (got > 0 && got != pool_left) {
        empty_answers = 0;
        steal_pause = clock::duration::zero();
        steal_after = clock::time_point{};
      } else if (++empty_answers >= size - 1) {
        empty_answers = 0;
        steal_pause = std::clamp<clock::duration>(2 * steal_pause, steal_pause_first, steal_pause_last);
        steal_after = clock::now() + steal_pause;
      }
    }
    answered.fetch_add(1);
    if (got != 0) arrived();  // nothing came: no reason to wake, or to stay awake
  }

  /// Takes one message from `source` (on the service thread, or not).
  void take(int source, std::string_view message, bool service) {
    byte_reader in{message};
    const std::uint64_t kind = in.number();
    if (kind == kind_task) {
      queued_task t = get_task(in);
      t.placed = true;
      if (!service && direct && !next_task) {  // work_until runs it next
        next_task = std::move(t);
        arrivals.fetch_add(1);
        return;
      }
      {
        std::lock_guard guard(lock);
        queue.push_back(std::move(t));
        queued.store(queue.size());
      }
      arrived();
    } else if (kind == kind_steal) {
      answer_steal(source, in.number());
    } else if (kind == kind_stolen) {
      take_stolen(in);
    } else if (kind == kind_results) {
      settle(in, in.number());
    } else if (kind == kind_closing) {
      closers.fetch_add(1);
      arrived();
    } else if (kind == kind_left) {
      record_left(static_cast<int>(in.number()));
      arrived();
    } else {
      throw error("mpiproc: task_pool: a message of an unknown kind (a bug)");
    }
  }

  /// Posts channel c's receive for its next message.
  void post(int c) { MPIPROC_CHECK(MPI_Start(&posted[c])); }

  /// Makes both channels' receives and posts them.
  void listen() {
    for (int c = 0; c < channels; ++c) {
      inbox[c].resize(short_message);
      MPIPROC_CHECK(MPI_Recv_init(inbox[c].data(), static_cast<int>(short_message), MPI_BYTE, MPI_ANY_SOURCE,
                                  short_tag(c), comm, &posted[c]));
      post(c);
    }
    listening = true;
  }

  /// Takes one message that came on a channel this thread may test: the work channel if `work`
  /// (its caller holds work_lock), the stealing channel if steal_lock is free: whether one had.
  /// One at a time: the caller acts on it (runs the task, sees the result) before it looks again.
  bool receive(bool service, bool work) {
    std::unique_lock steal(steal_lock, std::try_to_lock);
    if (!listening || (!work && !steal.owns_lock())) return false;
    int c = MPI_UNDEFINED, found = 0;
    MPI_Status status;
    if (work && steal.owns_lock()) {
      MPIPROC_CHECK(MPI_Testany(channels, posted, &c, &found, &status));
    } else {
      c = work ? channel::work : stealing;
      MPIPROC_CHECK(MPI_Test(&posted[c], &found, &status));
    }
    if (!found || c == MPI_UNDEFINED) return false;
    if (c == channel::work && steal.owns_lock()) steal.unlock();
    int count = 0;
    MPIPROC_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
    std::string longer;
    std::string_view message(inbox[c].data(), static_cast<std::size_t>(count));
    if (byte_reader in{message}; in.number() == kind_long) {
      longer.resize(in.number());
      MPIPROC_CHECK(MPI_Recv(longer.data(), static_cast<int>(longer.size()), MPI_BYTE, status.MPI_SOURCE, long_tag(c),
                             comm, MPI_STATUS_IGNORE));
      message = longer;
      post(c);  // the buffer is free again
    }
    try {
      take(status.MPI_SOURCE, message, service);
    } catch (...) {
      if (longer.empty()) post(c);
      throw;
    }
    if (longer.empty()) post(c);  // the buffer is free again
    return true;
  }
  /// The main thread's: it looks (holds work_lock).
  bool receive() { return receive(false, true); }

  /// Ends both posted receives (close, abandon; the main thread, looking): nothing more comes.
  void unpost() noexcept {
    const std::lock_guard steal(steal_lock);
    if (!listening) return;
    listening = false;
    for (MPI_Request& r : posted) {
      MPI_Cancel(&r);
      MPI_Wait(&r, MPI_STATUS_IGNORE);
      MPI_Request_free(&r);
    }
  }

  /// The service thread's share of the messages (see main_thread_is). While the rank computes,
  /// results and placed tasks wait for it (its next wait in the pool, or future::ready): taking
  /// them here would cost the computing rank a core's share per task.
  bool poll_for_main() {
    const int now = main.load();
    if (now == looking) return false;  // it looks itself: no MPI call beside it
    if (now == running) {
      // Only a long task: between short ones the main thread looks itself, and a service thread
      // polling beside it would take a core's share from it.
      const std::uint64_t task = tasks_run.load(std::memory_order_relaxed);
      const auto at = clock::now();
      if (task != seen_task) {
        seen_task = task;
        seen_since = at;
      }
      if (at - seen_since < long_task) return false;
    }
    std::unique_lock work(work_lock, std::defer_lock);
    const bool all = now == napping && work.try_lock() && main.load() == napping;
    return receive(true, all);
  }

  /// Takes the results held for `to` (`lock` held) as a message: empty if none.
  std::string results_for(int to) {
    auto& [count, batch] = outgoing[static_cast<std::size_t>(to)];
    if (count == 0) return {};
    std::string message = batch.take();
    const std::uint64_t n = count;
    std::memcpy(message.data() + sizeof n, &n, sizeof n);  // over the count's place
    held.fetch_sub(count);
    count = 0;
    batch = byte_writer();
    return message;
  }
  /// Sends the results held for `to`.
  void flush(int to) {
    std::string message;
    {
      std::lock_guard guard(lock);
      message = results_for(to);
    }
    if (!message.empty()) send(to, std::move(message));
  }
  void flush_all() {
    if (held.load() == 0) return;
    std::vector<std::pair<int, std::string>>& messages = flushing;
    {
      std::lock_guard guard(lock);
      for (int r = 0; r < size; ++r)
        if (std::string m = results_for(r); !m.empty()) messages.emplace_back(r, std::move(m));
    }
    for (auto& [to, message] : messages) send(to, std::move(message));
    messages.clear();
  }
  std::vector<std::pair<int, std::string>> flushing;  // flush_all's, kept for its room (main thread)

  /// Runs `t` here and sends its outcome to its submitter.
  void run(queued_task& t) {
    task_status status = task_status::done;
    std::string bytes;
    if (t.limit && clock::now() >= *t.limit) {
      status = task_status::timed_out;
      bytes = "mpiproc: the task's time limit of " + seconds_text(t.limit_seconds) + " s passed before it started";
    } else if (t.function >= runners.size() || signatures[t.function] != t.signature) {
      status = task_status::failed;
      bytes = "mpiproc: usage_error: rank " + std::to_string(rank) +
              " has no task of this number and type (every rank must define the same tasks in the same order)";
    } else {
      // The service thread answers steals meanwhile (only this thread writes either).
      tasks_run.store(tasks_run.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      const int was = main.load(std::memory_order_relaxed);
      main.store(running, std::memory_order_release);
      try {
        bytes = runners[t.function](t.args);
      } catch (const std::exception& e) {
        status = task_status::failed;
        bytes = e.what();
      } catch (...) {
        status = task_status::failed;
        bytes = "an exception of unknown type";
      }
      main.store(was, std::memory_order_release);
    }
    if (t.submitter == rank) {
      settle(t.id, status, rank, std::move(bytes));
      return;
    }
    if (held.load() == 0 && queued.load() == 0) {  // nothing else to run or send: no batch
      byte_writer out(64 + bytes.size());
      out.number(kind_results).number(1).number(t.id).number(static_cast<std::uint64_t>(status));
      out.number(static_cast<std::uint64_t>(rank)).bytes(bytes);
      send(t.submitter, out.take());
      return;
    }
    bool full = false;
    {
      std::lock_guard guard(lock);
      auto& [count, batch] = outgoing[static_cast<std::size_t>(t.submitter)];
      if (count == 0) {
        batch = byte_writer(64 + bytes.size());
        batch.number(kind_results).number(0);  // the count's place (results_for)
      }
      batch.number(t.id).number(static_cast<std::uint64_t>(status)).number(static_cast<std::uint64_t>(rank)).bytes(bytes);
      held.fetch_add(1);
      full = ++count >= results_batch;
    }
    if (full) flush(t.submitter);
  }

  /// Runs the newest task of this rank's queue: false if it is empty.
  bool run_local() {
    if (queued.load() == 0) return false;
    queued_task t;
    {
      std::lock_guard guard(lock);
      if (queue.empty()) return false;
      t = std::move(queue.back());
      queue.pop_back();
      queued.store(queue.size());
    }
    run(t);
    return true;
  }

  /// Asks the next rank for tasks, unless a request is out already, or every rank had nothing a
  /// moment ago; its answer comes as a message (take_stolen).
  void ask_to_steal(clock::time_point now) {
    if (size < 2) return;
    int from = 0;
    {
      std::lock_guard guard(lock);
      if (asking || steals_stopped || now < steal_after) return;
      asking = true;
      from = victim;
    }
    asked.fetch_add(1);
    send(from, byte_writer().number(kind_steal).number(runners.size()).take());
  }
};

pool_core::pool_core(const communicator& comm) : shared_(std::make_shared<shared>()), rank_(comm.rank()), size_(comm.size()) {
  int level = MPI_THREAD_SINGLE;
  MPIPROC_CHECK(MPI_Query_thread(&level));
  if (level < MPI_THREAD_MULTIPLE)
    throw usage_error("mpiproc: a task_pool needs MPI_THREAD_MULTIPLE (mpiproc::environment asks for it)");
  shared_->rank = rank_;
  shared_->size = size_;
  shared_->victim = (rank_ + 1) % size_;
  shared_->outgoing.resize(static_cast<std::size_t>(size_));
  MPIPROC_CHECK(MPI_Comm_dup(comm.native(), &shared_->comm));
  shared_->listen();
  std::weak_ptr<shared> weak = shared_;
  // The endpoint's barrier: every rank's communicator is there before any message is sent.
  shared_->endpoint = std::make_unique<service_endpoint>(comm, 0, nullptr, nullptr, [weak]() noexcept {
    const auto s = weak.lock();
    if (!s) return false;
    try {
      return s->poll_for_main();
    } catch (...) {  // nobody to tell on the service thread: the main thread meets the same failure
      return false;
    }
  });
}

pool_core::~pool_core() { abandon(); }

void pool_core::abandon() noexcept {
  shared& s = *shared_;
  if (s.closed) return;
  s.closed = true;
  s.abandoned.store(true);
  // Tells the others, so that their waits end with an error rather than wait for this rank: in
  // the name of the rank whose leaving ended this rank's part, if one did.
  const int gone = s.left.load() >= 0 ? s.left.load() : rank_;
  try {
    for (int r = 0; r < size_; ++r)
      if (r != rank_) s.send(r, byte_writer().number(kind_left).number(static_cast<std::uint64_t>(gone)).take());
  } catch (...) {
  }
  s.endpoint->abandon();
  s.move_main(shared::looking);  // the service thread leaves the receives alone meanwhile
  s.unpost();
  s.move_main(shared::computing);
}

bool pool_core::closed() const noexcept { return shared_->closed; }

std::uint32_t pool_core::define(runner run, std::uint64_t signature) {
  if (shared_->closed) throw usage_error("mpiproc: task_pool::define after close()");
  shared_->runners.push_back(std::move(run));
  shared_->signatures.push_back(signature);
  return static_cast<std::uint32_t>(shared_->runners.size() - 1);
}

std::shared_ptr<task_state> pool_core::submit(std::uint32_t function, std::uint64_t signature, std::string args,
                                              int where, double time_limit) {
  shared& s = *shared_;
  if (s.closed) throw usage_error("mpiproc: task_pool::submit after close()");
  if (where < -1 || where >= size_)
    throw usage_error("mpiproc: task_pool::submit to rank " + std::to_string(where) + ", outside [0, " +
                      std::to_string(size_) + ")");
  if (time_limit < 0) throw usage_error("mpiproc: task_pool::submit: a negative time limit");
  auto state = std::make_shared<task_state>();
  state->id = s.next_id++;
  queued_task t{state->id, rank_, function, signature, std::nullopt, time_limit, std::move(args), where != -1};
  if (time_limit > 0) {
    t.limit = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(time_limit));
    state->limit = t.limit;
    state->limit_seconds = time_limit;
  }
  s.created.store(s.created.load(std::memory_order_relaxed) + 1);  // only this thread adds
  const bool here = where == -1 || where == rank_;
  std::string message;
  if (!here) {
    byte_writer out(64 + t.args.size());
    out.number(kind_task);
    put_task(out, t);
    message = out.take();
  }
  {
    std::lock_guard guard(s.pending_lock);
    s.pending.push_back(state);  // at state->id - pending_first
  }
  if (here) {
    std::lock_guard guard(s.lock);
    s.queue.push_back(std::move(t));
    s.queued.store(s.queue.size());
  }
  if (!here) s.send(where, std::move(message));
  return state;
}

bool pool_core::ready(task_state& state) {
  if (settled(state)) return true;
  // Outcomes wait for this rank to look (poll_for_main).
  shared& s = *shared_;
  if (s.closed) return settled(state);
  const int was = s.move_main(shared::looking);
  while (!settled(state) && s.receive()) {
  }
  s.move_main(was);
  return settled(state);
}

bool pool_core::settled(task_state& state) {
  if (state.status.load() != task_status::pending) return true;
  if (!state.limit || clock::now() < *state.limit) return false;
  std::lock_guard guard(state.lock);
  if (state.status.load() == task_status::pending) {
    state.bytes = past_limit(state.limit_seconds);
    state.status.store(task_status::timed_out);
  }
  return true;
}

bool pool_core::cancel(task_state& state) {
  shared& s = *shared_;
  if (settled(state)) return state.status.load() == task_status::cancelled;
  {
    std::lock_guard guard(s.lock);
    const auto found = std::find_if(s.queue.rbegin(), s.queue.rend(),
                                    [&](const queued_task& t) { return t.id == state.id && t.submitter == rank_; });
    if (found == s.queue.rend()) return false;
    s.queue.erase(std::next(found).base());
    s.queued.store(s.queue.size());
  }
  s.settle(state.id, task_status::cancelled, rank_, "mpiproc: the task was cancelled");
  return true;
}

bool pool_core::work_until(const std::function<bool()>& done, const deadline& until) {
  shared& s = *shared_;
  if (s.closed) return done();
  struct in_pool {  // the service thread leaves the messages to this thread meanwhile
    shared& s;
    int was;
    explicit in_pool(shared& owner) : s(owner), was(owner.move_main(shared::looking)) {}
    ~in_pool() { s.move_main(was); }
  } looks(s);
  // Takes a message, and runs the task it placed here, if it did: whether one came.
  const auto look = [&s] {
    s.direct = true;
    const bool got = s.receive();
    s.direct = false;
    if (!got) return false;
    if (s.next_task) {
      queued_task t = std::move(*s.next_task);
      s.next_task.reset();
      s.run(t);
    }
    return true;
  };
  int runs = 0;
  // With nothing to do, a rank spins a while (an answer often comes that soon), reading the clock
  // only every few rounds (a read costs as much as a look for messages here), then yields, then
  // sleeps until the service thread takes a message for it, or for a nap that grows (ranks may
  // outnumber cores: an idle one leaves its core to them).
  std::uint64_t idle_rounds = 0;
  bool spinning = true;
  clock::time_point idle_since{};
  clock::duration nap = idle_nap_first;
  for (;;) {
    const std::uint64_t seen = s.arrivals.load();
    const bool finished = done();
    if (!finished && s.run_local()) {
      // Between its own tasks, a rank looks for messages (steals to answer, results) every few.
      if (++runs == runs_between_looks) {
        runs = 0;
        look();
      }
      idle_rounds = 0;
      spinning = true;
      continue;
    }
    runs = 0;
    // Results held for other ranks go before this rank returns to its own code, which may wait
    // on those ranks.
    s.flush_all();
    if (finished) return true;
    if (const int gone = s.left.load(); gone >= 0) throw peer_failed(gone);
    if (look()) {
      // Work or news came: quick looks again. A steal to answer, or an answer of nothing, leaves
      // an idle rank on its way to napping (idle ranks asking each other would keep it awake).
      if (s.arrivals.load() != seen) {
        idle_rounds = 0;
        spinning = true;
      }
      continue;
    }
    if (spinning && idle_rounds++ % idle_clock_rounds != 0) {
      cpu_relax();
      continue;
    }
    const auto now = clock::now();
    if (idle_rounds == 1) {
      idle_since = now;
      nap = idle_nap_first;
    }
    if (until && now >= *until) return false;
    s.ask_to_steal(now);
    spinning = now - idle_since < idle_spin;
    if (spinning) continue;
    if (now - idle_since < idle_yield) {
      std::this_thread::yield();
      continue;
    }
    std::unique_lock guard(s.lock);
    const auto wake = until ? std::min(now + nap, *until) : now + nap;
    s.move_main(shared::napping);  // the service thread takes every message meanwhile
    if (s.queue.empty() && s.arrivals.load() == seen) s.activity.wait_until(guard, wake);
    guard.unlock();
    s.move_main(shared::looking);
    nap = std::min<clock::duration>(2 * nap, idle_nap_last);
  }
}

void pool_core::close() {
  shared& s = *shared_;
  if (s.closed) return;
  if (s.closing) throw usage_error("mpiproc: task_pool::close from a task of the pool");
  s.closing = true;
  // Waves of sums of every rank's counts: the pool is done when a wave finds every task settled
  // and every steal request answered, and the next wave finds the same sums (no rank submitted,
  // settled or asked anything in between, so none runs a task that could submit more). A rank
  // sends no steal request after a wave found everything settled, so none is in flight at the end.
  // The waves start once every rank is in close(): a collective in flight makes each MPI call
  // of this rank progress it meanwhile, a cost while the others still submit.
  for (int r = 0; r < size_; ++r)
    if (r != rank_) s.send(r, byte_writer().number(kind_closing).take());
  std::uint64_t last[4] = {~std::uint64_t{0}, 0, 0, 0};
  bool finished = false;  // once true, stays so: work_until may ask again
  unsigned looks = 0;
  work_until(
      [&] {
        if (finished) return true;
        if (s.closers.load() < size_ - 1) return false;
        if (s.wave == MPI_REQUEST_NULL) {
          s.flush_all();
          s.mine[0] = s.created.load();
          s.mine[1] = s.settled.load();
          s.mine[2] = s.asked.load();
          s.mine[3] = s.answered.load();
          MPIPROC_CHECK(MPI_Iallreduce(s.mine, s.sums, 4, MPI_UINT64_T, MPI_SUM, s.comm, &s.wave));
        }
        // Testing the wave at every look would cost each look an MPI call: the rank's other
        // MPI calls move the wave on meanwhile.
        if (++looks % wave_looks != 0 || !completed(s.wave)) return false;
        const bool balanced = s.sums[0] == s.sums[1] && s.sums[2] == s.sums[3];
        {
          std::lock_guard guard(s.lock);
          s.steals_stopped = balanced;
        }
        if (balanced && std::equal(s.sums, s.sums + 4, last)) return finished = true;
        std::copy(s.sums, s.sums + 4, last);
        return false;  // the next call starts the next wave
      },
      std::nullopt);
  // The service thread stops looking at the pool's messages; every message sent was taken (each
  // was counted where it arrived), so every send has completed or is about to.
  s.endpoint->release();
  s.unpost();
  {
    std::lock_guard guard(s.sending);
    poll_until([&] {
      s.reap();
      return s.sends.empty();
    }, std::nullopt);
  }
  MPIPROC_CHECK(MPI_Comm_free(&s.comm));
  s.closed = true;
}

}  // namespace mpiproc::detail
