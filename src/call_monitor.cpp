#include "communicator_state.hpp"

#include <mpiproc/detail/call_monitor.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/error.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace mpiproc::detail {

namespace {

using steady = std::chrono::steady_clock;
using seconds = std::chrono::duration<double>;

constexpr seconds slice_target = std::chrono::milliseconds(25);
constexpr auto update_every = std::chrono::milliseconds(100);  // a rank's count to rank 0
constexpr auto redraw_every = std::chrono::milliseconds(200);  // the terminal's bar
constexpr auto line_every = std::chrono::seconds(30);          // a file's lines, at the latest

/// What travels between a rank and rank 0 in one call. Each rank sends updates, then exactly one
/// final count; rank 0 answers each rank exactly once: `stop` when a chunk ran past its time limit
/// somewhere before that rank's final count came, `finished` when it came. So every message of a
/// call is received within it, and no rank waits for one that will not come.
enum message_kind : std::int32_t { update, final_count, final_timed_out, finished, stop };

struct message {
  std::int64_t done = 0;
  std::int32_t kind = update;
  std::int32_t rank = 0;  // stop: the rank whose chunk ran past its limit
};

std::string duration_text(double s) {
  s = std::min(s, 1e9);  // a first slow slice of a huge call can estimate anything
  char out[48];
  if (s < 60)
    std::snprintf(out, sizeof out, "%.1f s", s);
  else if (s < 3600)
    std::snprintf(out, sizeof out, "%d min %02d s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(out, sizeof out, "%d h %02d min", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
  return out;
}

std::string count_text(double n) {
  char out[32];
  if (n < 1e4)
    std::snprintf(out, sizeof out, "%.0f", n);
  else if (n < 1e6)
    std::snprintf(out, sizeof out, "%.1fk", n / 1e3);
  else if (n < 1e9)
    std::snprintf(out, sizeof out, "%.1fM", n / 1e6);
  else
    std::snprintf(out, sizeof out, "%.1fG", n / 1e9);
  return out;
}

/// Rank 0's view of the whole call: a bar on a terminal, lines in a file, or the user's callback.
class display {
 public:
  display(const progress& p, std::int64_t total, std::int64_t saved)
      : p_(p), total_(total), saved_(saved), tty_(::isatty(STDERR_FILENO) == 1), started_(steady::now()) {}

  void show(std::int64_t done, bool complete) {
    const auto now = steady::now();
    const seconds elapsed = now - started_;
    if (p_.on_update) {
      if (failure_ || (!complete && done == last_done_)) return;
      last_done_ = done;
      try {
        p_.on_update(complete ? total_ : done, total_, elapsed);
      } catch (...) {
        failure_ = std::current_exception();  // raised by take_failure, never from here
      }
      return;
    }
    if (elapsed < p_.quiet_for) return;
    if (complete) done = total_;
    const double rate = elapsed.count() > 0 ? static_cast<double>(done - saved_) / elapsed.count() : 0;
    const double left = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
    const std::string label = p_.label.empty() ? "progress" : p_.label;
    const double fraction = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1;
    if (tty_) {
      if (!complete && now < next_draw_) return;
      next_draw_ = now + redraw_every;
      constexpr int width = 24;
      std::string bar(static_cast<std::size_t>(fraction * width), '#');
      bar.resize(width, '.');
      std::fprintf(stderr, "\r\033[K%s [%s] %5.1f%% %s/%s items, %s/s, %s %s%s", label.c_str(), bar.c_str(),
                   100 * fraction, count_text(static_cast<double>(done)).c_str(),
                   count_text(static_cast<double>(total_)).c_str(), count_text(rate).c_str(),
                   complete ? "in" : "ETA", complete ? duration_text(elapsed.count()).c_str()
                                                     : (left < 0 ? "?" : duration_text(left).c_str()),
                   complete ? "\n" : "");
      drawn_ = !complete;
    } else {
      const int tenth = static_cast<int>(fraction * 10);
      // 100 % is the complete call's line alone; a file gets a line per tenth, or every 30 s.
      if (!complete && (done == total_ || (tenth <= last_tenth_ && now < next_line_))) return;
      last_tenth_ = tenth;
      next_line_ = now + line_every;
      std::string resumed = saved_ > 0 ? ", " + std::to_string(saved_) + " of them from the checkpoint" : "";
      std::string end = complete ? "" : ", about " + (left < 0 ? std::string("?") : duration_text(left)) + " left";
      std::fprintf(stderr, "%s: %d%% (%lld/%lld items%s) in %s, %s items/s%s\n", label.c_str(),
                   static_cast<int>(100 * fraction), static_cast<long long>(done), static_cast<long long>(total_),
                   resumed.c_str(), duration_text(elapsed.count()).c_str(), count_text(rate).c_str(), end.c_str());
    }
    std::fflush(stderr);
  }

  /// What the user's on_update threw, once (it is not called again after that).
  std::exception_ptr take_failure() noexcept { return std::exchange(failure_, nullptr); }

  /// The call failed: end the terminal's bar line, so that the error starts a line of its own.
  void interrupted() noexcept {
    if (!drawn_) return;
    std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  const progress& p_;
  std::int64_t total_, saved_;
  bool tty_;
  steady::time_point started_;
  steady::time_point next_draw_{}, next_line_ = steady::now() + line_every;
  std::int64_t last_done_ = -1;
  int last_tenth_ = 0;
  bool drawn_ = false;  // a bar line is on the terminal, not yet ended
  std::exception_ptr failure_;
};

enum class phase { working, in_slice, taken, concluding };

}  // namespace

call_signature with_options(call_signature sig, const call_options& opts) {
  sig.options = static_cast<std::uint8_t>((opts.progress.enabled ? 1 : 0) | (opts.time_limit ? 2 : 0));
  return sig;
}

struct call_monitor::state {
  MPI_Comm comm = MPI_COMM_NULL;  // the communicator's channel for these messages
  int tag = 0;
  int rank = 0, size = 1;
  std::int64_t total = 0;
  std::int64_t done = 0;  // this rank's items in this call
  steady::time_point slice_started;

  // ranks other than 0
  MPI_Request reply = MPI_REQUEST_NULL;
  message reply_in;
  bool replied = false;
  MPI_Request update_sent = MPI_REQUEST_NULL, final_sent = MPI_REQUEST_NULL;
  message update_out, final_out;
  steady::time_point next_update;

  // rank 0
  std::unique_ptr<display> shown;
  MPI_Request incoming = MPI_REQUEST_NULL;
  message in;
  std::vector<std::int64_t> done_of;  // each rank's last count
  std::vector<char> answered;
  std::vector<MPI_Request> answers;
  std::vector<message> answers_out;
  int finals = 0;
  int stop_rank = -1;
  std::int64_t saved = 0;

  // the watchdog
  chunk_time_limit limit;
  std::mutex mutex;
  std::condition_variable changed;
  phase now = phase::working;
  chunk current;
  steady::time_point current_started;
  const conclude_fn* conclude = nullptr;
  std::exception_ptr taken_result;
  bool concluded = false, returned = false, stopping = false;
  std::thread watchdog;

  std::int64_t done_everywhere() const {
    std::int64_t all = saved + done;
    for (const std::int64_t d : done_of) all += d;
    return all;
  }

  void post_incoming() {
    MPIPROC_CHECK(MPI_Irecv(&in, sizeof in, MPI_BYTE, MPI_ANY_SOURCE, tag, comm, &incoming));
  }

  void answer(int to, message_kind kind, int about) {
    answers_out[static_cast<std::size_t>(to)] = message{0, kind, about};
    MPIPROC_CHECK(MPI_Isend(&answers_out[static_cast<std::size_t>(to)], sizeof(message), MPI_BYTE, to, tag, comm,
                            &answers[static_cast<std::size_t>(to)]));
    answered[static_cast<std::size_t>(to)] = 1;
  }

  /// Rank 0: a chunk of `failed` ran past its limit; every rank still working hears it.
  void stop_all(int failed) {
    if (stop_rank >= 0) return;
    stop_rank = failed;
    for (int r = 1; r < size; ++r)
      if (!answered[static_cast<std::size_t>(r)]) answer(r, stop, failed);
  }

  /// Rank 0: takes in the messages that came.
  void poll() {
    while (incoming != MPI_REQUEST_NULL) {
      int arrived = 0;
      MPI_Status status;
      MPIPROC_CHECK(MPI_Test(&incoming, &arrived, &status));
      if (!arrived) return;
      const auto from = static_cast<std::size_t>(status.MPI_SOURCE);
      done_of[from] = std::max(done_of[from], in.done);
      if (in.kind == final_count || in.kind == final_timed_out) {
        ++finals;
        if (in.kind == final_timed_out) stop_all(status.MPI_SOURCE);
        if (!answered[from]) answer(status.MPI_SOURCE, finished, status.MPI_SOURCE);
      }
      if (finals < size - 1) post_incoming();
    }
  }

  /// This rank's part is over (`timed_out`: a chunk of it ran past its limit): rank 0 hears it.
  void finish(bool timed_out) {
    if (rank == 0) {
      if (timed_out) stop_all(0);
      return;
    }
    if (update_sent != MPI_REQUEST_NULL) complete_by(update_sent, std::nullopt);
    final_out = message{done, timed_out ? final_timed_out : final_count, rank};
    MPIPROC_CHECK(MPI_Isend(&final_out, sizeof final_out, MPI_BYTE, 0, tag, comm, &final_sent));
  }

  /// While the agreement waits: true once every message of the call arrived.
  bool settle() {
    if (size == 1) return true;
    int complete = 0;
    if (rank != 0) {
      if (reply != MPI_REQUEST_NULL) MPIPROC_CHECK(MPI_Test(&reply, &complete, MPI_STATUS_IGNORE));
      if (final_sent != MPI_REQUEST_NULL) MPIPROC_CHECK(MPI_Test(&final_sent, &complete, MPI_STATUS_IGNORE));
      return reply == MPI_REQUEST_NULL && final_sent == MPI_REQUEST_NULL;
    }
    poll();
    if (shown) shown->show(done_everywhere(), false);
    if (finals < size - 1) return false;
    MPIPROC_CHECK(MPI_Testall(size, answers.data(), &complete, MPI_STATUSES_IGNORE));
    return complete != 0;
  }

  std::string overrun_message() const {
    std::string positions = "[" + std::to_string(current.offset) + ", " +
                            std::to_string(current.offset + current.count) + ")";
    if (current.stride != 1)
      positions = std::to_string(current.offset) + " to " +
                  std::to_string(current.offset + (current.count - 1) * current.stride) + " in steps of " +
                  std::to_string(current.stride);
    char limit_text[32];
    std::snprintf(limit_text, sizeof limit_text, "%g s", limit.limit.count());
    return "mpiproc: a chunk ran past its chunk_time_limit of " + std::string(limit_text) + ": positions " +
           positions + " of the call's " + std::to_string(total) + " (counted from 0) did not finish in time";
  }

  void watch() {
    std::unique_lock lock(mutex);
    const auto idle_check = std::chrono::duration_cast<steady::duration>(
        std::min<seconds>(limit.limit / 4, std::chrono::milliseconds(100)));
    for (;;) {
      if (stopping) return;
      if (now == phase::in_slice) {
        const auto deadline = current_started + std::chrono::duration_cast<steady::duration>(limit.limit);
        if (steady::now() >= deadline) break;
        changed.wait_until(lock, deadline);
      } else {
        changed.wait_for(lock, idle_check);
      }
    }
    // The user's function is still running: take this rank's part of the call over.
    now = phase::taken;
    const std::string message = overrun_message();
    lock.unlock();
    std::exception_ptr failure = std::make_exception_ptr(error(message));
    try {
      finish(true);
      (*conclude)(failure, true, [this] { return settle(); });
    } catch (...) {
      taken_result = std::current_exception();
    }
    lock.lock();
    concluded = true;
    changed.notify_all();
    if (changed.wait_for(lock, std::chrono::duration_cast<steady::duration>(limit.grace),
                         [&] { return returned || stopping; }))
      return;
    std::fprintf(stderr,
                 "mpiproc: rank %d: %s; the call failed on every rank, but the function has not returned %g s "
                 "later: ending the job (MPI_Abort)\n",
                 rank, message.c_str(), limit.grace.count());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
};

call_monitor::call_monitor(const communicator& comm, const call_options& opts, std::int64_t total, std::int64_t saved,
                           bool whole_chunks)
    : state_(std::make_unique<state>()), whole_chunks_(whole_chunks) {
  state& s = *state_;
  std::tie(s.comm, s.tag) = comm.state().map_call_channel();
  s.rank = comm.rank();
  s.size = comm.size();
  s.total = total;
  s.saved = saved;
  s.limit = opts.time_limit;
  s.next_update = steady::now() + update_every;
  if (s.rank == 0) {
    if (opts.progress.enabled) s.shown = std::make_unique<display>(opts.progress, total, saved);
    const auto ranks = static_cast<std::size_t>(s.size);
    s.done_of.assign(ranks, 0);
    s.answered.assign(ranks, 0);
    s.answers.assign(ranks, MPI_REQUEST_NULL);
    s.answers_out.assign(ranks, message{});
    if (s.size > 1) s.post_incoming();
  } else {
    MPIPROC_CHECK(MPI_Irecv(&s.reply_in, sizeof s.reply_in, MPI_BYTE, 0, s.tag, s.comm, &s.reply));
  }
}

call_monitor::~call_monitor() {
  state& s = *state_;
  if (s.watchdog.joinable()) {
    {
      const std::lock_guard guard(s.mutex);
      s.stopping = true;
    }
    s.changed.notify_all();
    s.watchdog.join();
  }
  // Only where the agreement ended early (ranks that disagree on the call): nothing stays posted.
  for (MPI_Request* r : {&s.incoming, &s.reply})
    if (*r != MPI_REQUEST_NULL) {
      MPI_Cancel(r);
      MPI_Wait(r, MPI_STATUS_IGNORE);
    }
  for (MPI_Request* r : {&s.update_sent, &s.final_sent})
    if (*r != MPI_REQUEST_NULL) MPI_Request_free(r);
  for (MPI_Request& r : s.answers)
    if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
}

void call_monitor::begin_slice(const chunk& slice) {
  state& s = *state_;
  s.slice_started = steady::now();
  if (!s.limit) return;
  const std::lock_guard guard(s.mutex);
  s.current = slice;
  s.current_started = s.slice_started;
  s.now = phase::in_slice;
}

void call_monitor::end_slice(const chunk& slice) {
  state& s = *state_;
  const auto now = steady::now();
  if (s.limit) {
    const std::lock_guard guard(s.mutex);
    if (s.now == phase::taken) throw call_taken_over{};
    s.now = phase::working;
  }
  s.done += slice.count;
  // The next slice takes about slice_target, growing at most fourfold from this one.
  const double took = seconds(now - s.slice_started).count();
  const double wanted = took > 0 ? static_cast<double>(slice.count) * (slice_target.count() / took) : 4.0 * static_cast<double>(slice.count);
  slice_ = static_cast<std::int64_t>(std::clamp(wanted, 1.0, 4.0 * static_cast<double>(slice.count)));
  if (s.rank == 0) {
    if (s.size > 1) s.poll();
    if (s.stop_rank >= 0) throw peer_failed(s.stop_rank);
    if (s.shown) {
      s.shown->show(s.done_everywhere(), false);
      // The user's on_update threw: the call fails on every rank with its message.
      if (std::exception_ptr failure = s.shown->take_failure()) std::rethrow_exception(failure);
    }
    return;
  }
  if (s.reply != MPI_REQUEST_NULL) {
    int arrived = 0;
    MPIPROC_CHECK(MPI_Test(&s.reply, &arrived, MPI_STATUS_IGNORE));
    if (arrived && s.reply_in.kind == stop) throw peer_failed(s.reply_in.rank);
  }
  if (now >= s.next_update) {
    s.next_update = now + update_every;
    int sent = 1;
    if (s.update_sent != MPI_REQUEST_NULL) MPIPROC_CHECK(MPI_Test(&s.update_sent, &sent, MPI_STATUS_IGNORE));
    if (sent) {
      s.update_out = message{s.done, update, s.rank};
      MPIPROC_CHECK(MPI_Isend(&s.update_out, sizeof s.update_out, MPI_BYTE, 0, s.tag, s.comm, &s.update_sent));
    }
  }
}

void call_monitor::failed_in_slice() {
  state& s = *state_;
  if (!s.limit) return;
  const std::lock_guard guard(s.mutex);
  if (s.now == phase::taken) throw call_taken_over{};
  s.now = phase::working;
}

void call_monitor::run(const std::function<void()>& work, const conclude_fn& conclude) {
  state& s = *state_;
  std::exception_ptr failure;
  try {
    if (s.limit) {
      int level = MPI_THREAD_SINGLE;
      MPIPROC_CHECK(MPI_Query_thread(&level));
      if (level < MPI_THREAD_MULTIPLE)
        throw usage_error("mpiproc: a chunk_time_limit needs MPI_THREAD_MULTIPLE (its watchdog thread calls MPI; an "
                          "mpiproc::environment asks for it); initialize MPI with it, or leave the limit out");
      if (s.limit.grace.count() < 0) throw usage_error("mpiproc: a chunk_time_limit's grace period must not be negative");
      s.conclude = &conclude;
      s.watchdog = std::thread([&s] { s.watch(); });
    }
    work();
  } catch (const call_taken_over&) {
    // the watchdog's agreement below
  } catch (...) {
    failure = std::current_exception();
  }
  if (s.limit) {
    std::unique_lock lock(s.mutex);
    if (s.now == phase::taken) {
      s.changed.wait(lock, [&] { return s.concluded; });
      s.returned = true;
      s.changed.notify_all();
      if (s.shown) s.shown->interrupted();
      std::rethrow_exception(s.taken_result);
    }
    s.now = phase::concluding;
  }
  s.finish(false);
  try {
    conclude(failure, false, [&s] { return s.settle(); });
  } catch (...) {
    if (s.shown) s.shown->interrupted();
    throw;
  }
  if (!s.shown) return;
  s.shown->show(s.total, true);
  // Once the work is over the call cannot fail on one rank alone (the others have returned): an
  // on_update that threw while the ranks concluded is reported, not raised.
  if (std::exception_ptr failure = s.shown->take_failure()) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mpiproc: the progress callback threw after the call completed (ignored): %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "mpiproc: the progress callback threw after the call completed (ignored)\n");
    }
  }
}

}  // namespace mpiproc::detail
