#include "service_endpoint.hpp"

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/pool_core.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <unordered_map>

namespace mpiproc::detail {

namespace {
// The requests a rank's service thread answers for its pool.
enum : std::uint64_t {
  op_steal,    // a call: up to half this rank's queue (at most steal_most tasks), oldest first
  op_results,  // posted: the outcomes of tasks this rank submitted
  op_queue,    // posted: a task submitted to run on this rank
  op_left,     // posted: the sender left the pool without close() (an exception ended its part)
};
constexpr std::size_t steal_most = 64;
// A rank running other ranks' tasks sends their results back in batches of this many, or
// sooner when it has nothing left to run.
constexpr std::size_t results_batch = 64;
// op_steal's answer from a rank that left the pool without close(): this count, then the rank
// whose failure ended the pool there.
constexpr std::uint64_t pool_left = ~std::uint64_t{0};

std::string left_answer(int rank) {
  return byte_writer().number(pool_left).number(static_cast<std::uint64_t>(rank)).take();
}

/// A task waiting in a rank's queue.
struct queued_task {
  std::uint64_t id = 0;
  int submitter = 0;
  std::uint32_t function = 0;
  std::uint64_t signature = 0;
  deadline limit;  // on this rank's clock
  double limit_seconds = 0;
  std::string args;
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
  std::mutex lock;  // queue, pending, outgoing
  std::condition_variable activity;  // a result or a task arrived
  std::deque<queued_task> queue;
  std::unordered_map<std::uint64_t, std::shared_ptr<task_state>> pending;  // submitted here, unsettled
  std::map<int, std::pair<std::size_t, byte_writer>> outgoing;             // results to send, per submitter
  std::vector<runner> runners;
  std::vector<std::uint64_t> signatures;
  std::atomic<std::uint64_t> created{0}, settled{0};  // tasks submitted here; their outcomes known here
  std::uint64_t next_id = 0;
  std::unique_ptr<service_endpoint> endpoint;
  MPI_Comm waves = MPI_COMM_NULL;  // the end's agreement (close)
  bool closed = false;
  bool closing = false;  // in close()
  std::atomic<int> left{-1};  // a rank that left the pool without close()
  std::atomic<bool> abandoned{false};  // this rank left it
  // close()'s wave in flight: kept here, since MPI writes `sums` until it completes.
  MPI_Request wave = MPI_REQUEST_NULL;
  std::uint64_t mine[2] = {0, 0}, sums[2] = {0, 0};
  int rank = 0;
  int victim = 0;  // the next rank to steal from

  /// Records an outcome of a task submitted here; wakes the main thread.
  void settle(std::uint64_t id, task_status status, int where, std::string bytes) {
    std::shared_ptr<task_state> state;
    {
      std::lock_guard guard(lock);
      const auto found = pending.find(id);
      if (found != pending.end()) {
        state = std::move(found->second);
        pending.erase(found);
      }
    }
    if (state) {
      std::lock_guard guard(state->lock);
      if (state->status.load() == task_status::pending) {
        state->rank = where;
        state->bytes = std::move(bytes);
        if (state->limit && clock::now() >= *state->limit && status != task_status::cancelled) {
          // Too late, even where nobody looked at the future in time.
          state->bytes = past_limit(state->limit_seconds);
          status = task_status::timed_out;
        }
        state->status.store(status);
      }
    }
    settled.fetch_add(1);
    std::lock_guard guard(lock);
    activity.notify_all();
  }

  std::optional<std::string> serve(int, const std::string& request) {
    byte_reader in(request);
    const std::uint64_t op = in.number();
    if (op == op_steal) {
      if (abandoned.load()) return left_answer(left.load() >= 0 ? left.load() : rank);
      // Only tasks the thief has defined already (ranks define the same tasks, not at once).
      const std::uint64_t defined = in.number();
      byte_writer tasks;
      std::size_t given = 0;
      std::lock_guard guard(lock);
      const std::size_t most = std::min(steal_most, (queue.size() + 1) / 2);
      const auto looked = [&](auto at) { return at - queue.begin() >= static_cast<std::ptrdiff_t>(4 * steal_most); };
      for (auto at = queue.begin(); at != queue.end() && given < most && !looked(at);) {
        if (at->function >= defined) {
          ++at;
          continue;
        }
        put_task(tasks, *at);
        at = queue.erase(at);
        ++given;
      }
      return byte_writer().number(given).take() + tasks.take();
    }
    if (op == op_results) {
      for (std::uint64_t k = in.number(); k > 0; --k) {
        const std::uint64_t id = in.number();
        const auto status = static_cast<task_status>(in.number());
        const auto where = static_cast<int>(in.number());
        settle(id, status, where, in.bytes());
      }
      return std::string();
    }
    if (op == op_left) {
      std::lock_guard guard(lock);
      if (left.load() < 0) left.store(static_cast<int>(in.number()));
      activity.notify_all();
      return std::string();
    }
    if (op == op_queue) {
      queued_task t = get_task(in);
      std::lock_guard guard(lock);
      queue.push_back(std::move(t));
      activity.notify_all();
      return std::string();
    }
    throw error("mpiproc: task_pool: an unknown request (a bug)");
  }

  /// Sends the results held for `to`.
  void flush(int to) {
    std::string message;
    {
      std::lock_guard guard(lock);
      auto found = outgoing.find(to);
      if (found == outgoing.end()) return;
      message = byte_writer().number(op_results).number(found->second.first).take() + found->second.second.take();
      outgoing.erase(found);
    }
    endpoint->post_call(to, message);
  }
  void flush_all() {
    std::vector<int> to;
    {
      std::lock_guard guard(lock);
      for (const auto& [rank, batch] : outgoing) to.push_back(rank);
    }
    for (const int r : to) flush(r);
  }

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
      try {
        bytes = runners[t.function](t.args);
      } catch (const std::exception& e) {
        status = task_status::failed;
        bytes = e.what();
      } catch (...) {
        status = task_status::failed;
        bytes = "an exception of unknown type";
      }
    }
    if (t.submitter == rank) {
      settle(t.id, status, rank, std::move(bytes));
      return;
    }
    bool full = false;
    {
      std::lock_guard guard(lock);
      auto& [count, batch] = outgoing[t.submitter];
      batch.number(t.id).number(static_cast<std::uint64_t>(status)).number(static_cast<std::uint64_t>(rank)).bytes(bytes);
      full = ++count >= results_batch;
    }
    if (full) flush(t.submitter);
  }

  /// Runs the newest task of this rank's queue: false if it is empty.
  bool run_local() {
    queued_task t;
    {
      std::lock_guard guard(lock);
      if (queue.empty()) return false;
      t = std::move(queue.back());
      queue.pop_back();
    }
    run(t);
    return true;
  }

  /// Asks each other rank in turn for tasks until one gives some: false if none did.
  bool steal(int size) {
    for (int tries = 1; tries < size; ++tries) {
      victim = (victim + 1) % size;
      if (victim == rank) victim = (victim + 1) % size;
      const std::optional<std::string> answer =
          endpoint->call(victim, byte_writer().number(op_steal).number(runners.size()).take());
      byte_reader in(*answer);
      const std::uint64_t got = in.number();
      if (got == pool_left) {
        const auto gone = static_cast<int>(in.number());
        int expected = -1;
        left.compare_exchange_strong(expected, gone);
        throw peer_failed(left.load());
      }
      if (got == 0) continue;
      std::lock_guard guard(lock);
      // The oldest runs first here (run_local takes the back); the newest are the first given away.
      for (std::uint64_t k = 0; k < got; ++k) queue.push_front(get_task(in));
      return true;
    }
    return false;
  }
};

pool_core::pool_core(const communicator& comm) : shared_(std::make_shared<shared>()), rank_(comm.rank()), size_(comm.size()) {
  int level = MPI_THREAD_SINGLE;
  MPIPROC_CHECK(MPI_Query_thread(&level));
  if (level < MPI_THREAD_MULTIPLE)
    throw usage_error("mpiproc: a task_pool needs MPI_THREAD_MULTIPLE (mpiproc::environment asks for it)");
  shared_->rank = rank_;
  shared_->victim = rank_;
  MPIPROC_CHECK(MPI_Comm_dup(comm.native(), &shared_->waves));
  std::weak_ptr<shared> weak = shared_;
  shared_->endpoint = std::make_unique<service_endpoint>(
      comm, 0, nullptr, [weak, me = rank_](int source, const std::string& request) -> std::optional<std::string> {
        const auto s = weak.lock();
        if (!s) return left_answer(me);  // answers a steal; a posted request's answer is dropped
        return s->serve(source, request);
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
      if (r != rank_) s.endpoint->post_call(r, byte_writer().number(op_left).number(static_cast<std::uint64_t>(gone)).take());
  } catch (...) {
  }
  s.endpoint->abandon();
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
  queued_task t{state->id, rank_, function, signature, std::nullopt, time_limit, std::move(args)};
  if (time_limit > 0) {
    t.limit = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(time_limit));
    state->limit = t.limit;
    state->limit_seconds = time_limit;
  }
  s.created.fetch_add(1);
  const bool here = where == -1 || where == rank_;
  std::string message;
  if (!here) {
    byte_writer out;
    out.number(op_queue);
    put_task(out, t);
    message = out.take();
  }
  {
    std::lock_guard guard(s.lock);
    s.pending.emplace(state->id, state);
    if (here) s.queue.push_back(std::move(t));
  }
  if (!here) s.endpoint->post_call(where, message);
  return state;
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
  }
  s.settle(state.id, task_status::cancelled, rank_, "mpiproc: the task was cancelled");
  return true;
}

bool pool_core::work_until(const std::function<bool()>& done, const deadline& until) {
  shared& s = *shared_;
  if (s.closed) return done();
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    if (!done() && s.run_local()) {
      pause = std::chrono::microseconds(20);
      continue;
    }
    // Results held for other ranks go before this rank returns to its own code, which may wait
    // on those ranks.
    s.flush_all();
    if (done()) return true;
    if (const int gone = s.left.load(); gone >= 0) throw peer_failed(gone);
    if (until && clock::now() >= *until) return false;
    if (size_ > 1 && s.steal(size_)) {
      pause = std::chrono::microseconds(20);
      continue;
    }
    // Nothing to run anywhere: wait for a result or a task to arrive, a little longer each time.
    std::unique_lock guard(s.lock);
    auto wake = clock::now() + pause;
    if (until) wake = std::min(wake, *until);
    if (s.queue.empty()) s.activity.wait_until(guard, wake);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(2));
  }
}

void pool_core::close() {
  shared& s = *shared_;
  if (s.closed) return;
  if (s.closing) throw usage_error("mpiproc: task_pool::close from a task of the pool");
  s.closing = true;
  // Waves of sums of every rank's counts: the pool is done when a wave finds as many outcomes
  // known as tasks submitted, and the next wave finds the same sums (no rank submitted or settled
  // anything in between, so none runs a task that could submit more).
  std::uint64_t last[2] = {~std::uint64_t{0}, 0};
  bool finished = false;  // once true, stays so: work_until may ask again
  work_until(
      [&] {
        if (finished) return true;
        if (s.wave == MPI_REQUEST_NULL) {
          s.flush_all();
          s.mine[0] = s.created.load();
          s.mine[1] = s.settled.load();
          MPIPROC_CHECK(MPI_Iallreduce(s.mine, s.sums, 2, MPI_UINT64_T, MPI_SUM, s.waves, &s.wave));
        }
        int complete = 0;
        MPIPROC_CHECK(MPI_Test(&s.wave, &complete, MPI_STATUS_IGNORE));
        if (!complete) return false;
        if (s.sums[0] == s.sums[1] && s.sums[0] == last[0] && s.sums[1] == last[1]) return finished = true;
        last[0] = s.sums[0];
        last[1] = s.sums[1];
        return false;  // the next call starts the next wave
      },
      std::nullopt);
  s.endpoint->release();
  MPIPROC_CHECK(MPI_Comm_free(&s.waves));
  s.closed = true;
}

}  // namespace mpiproc::detail
