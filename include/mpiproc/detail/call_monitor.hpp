#pragma once

// Progress and chunk time limits of a map call (progress.hpp, chunk_time_limit.hpp): the slices a
// rank's chunks are cut into, the messages that bring every rank's count to rank 0 and rank 0's
// word to stop to the others, rank 0's display, and the watchdog that takes a stuck rank's part
// of the call over.

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/schedule_loop.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>

namespace mpiproc::detail {

/// The end of a rank's part of a call: makes the call's failure agreement for `failure` (null if
/// the part succeeded), passing `settle` to agree_on_failure. `by_watchdog`: run by the watchdog of
/// a stuck rank, whose main thread is still in the user's function and owns everything else.
using conclude_fn = std::function<void(std::exception_ptr failure, bool by_watchdog, const settle_fn& settle)>;

/// The call's signature with its progress and time limit, so that ranks that disagree on them
/// get usage_error from the agreement.
call_signature with_options(call_signature sig, const call_options& opts);

/// One rank's side of a monitored call (progress or a time limit): cuts its chunks into slices of
/// about 25 ms, counts them, exchanges messages with rank 0 between slices, and runs the watchdog.
class call_monitor {
 public:
  /// Collective in program order (not synchronizing): a call over `total` positions, of which an
  /// earlier run completed `saved` (a checkpoint's). `whole_chunks`: never cut a chunk into slices
  /// (a chunk form: progress then advances chunk by chunk, and the limit is per chunk).
  call_monitor(const communicator& comm, const call_options& opts, std::int64_t total, std::int64_t saved,
               bool whole_chunks);
  ~call_monitor();
  call_monitor(const call_monitor&) = delete;
  call_monitor& operator=(const call_monitor&) = delete;

  /// Calls work(slice) for consecutive slices of `c`. Between slices throws peer_failed when
  /// another rank's chunk ran past its time limit, and call_taken_over when this rank's did.
  template <class Work>
  void each_slice(const chunk& c, Work& work) {
    for (std::int64_t at = 0; at < c.count;) {
      const chunk slice{c.offset + at * c.stride, whole_chunks_ ? c.count : std::min(slice_, c.count - at), c.stride};
      begin_slice(slice);
      try {
        work(slice);
      } catch (...) {
        failed_in_slice();
        throw;
      }
      end_slice(slice);
      at += slice.count;
    }
  }

  /// Runs this rank's part, work(), then conclude; throws what conclude throws (the watchdog's
  /// agreement's error if the watchdog took the call over). On success rank 0 shows 100 %.
  void run(const std::function<void()>& work, const conclude_fn& conclude);

 private:
  struct state;

  void begin_slice(const chunk& slice);
  void end_slice(const chunk& slice);
  /// The user's function threw: the watchdog may have taken the call over already (then throws
  /// call_taken_over instead).
  void failed_in_slice();

  std::unique_ptr<state> state_;
  std::int64_t slice_ = 1;  // items in the next slice
  bool whole_chunks_;
};

/// This rank's part of a map call and the agreement that ends it, with the call's progress and
/// time limit: work(each) runs the rank's chunks and hands each to each(c, on_chunk), which calls
/// on_chunk(c), or on_chunk for the slices of c when the call is monitored; then conclude (see
/// conclude_fn). Without progress or a limit it costs nothing: each(c, f) is f(c). `sig` is the
/// call's (its whole_chunks).
template <class Work, class Conclude>
void run_map_part(const communicator& comm, const call_signature& sig, const call_options& opts, std::int64_t total,
                  std::int64_t saved, Work&& work, Conclude&& conclude) {
  if (!opts.monitored()) {
    std::exception_ptr failure;
    try {
      work([](const chunk& c, auto& on_chunk) { on_chunk(c); });
    } catch (...) {
      failure = std::current_exception();
    }
    conclude(failure, false, settle_fn{});
    return;
  }
  call_monitor monitor(comm, opts, total, saved, sig.whole_chunks);
  monitor.run([&] { work([&](const chunk& c, auto& on_chunk) { monitor.each_slice(c, on_chunk); }); }, conclude);
}

}  // namespace mpiproc::detail
