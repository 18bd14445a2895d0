#pragma once

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/call_monitor.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/schedule.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace mpiproc {

namespace detail {

/// Collective: do(chunk) for the chunks `s` gives this rank, or with a checkpoint for the pieces of
/// the positions no earlier run completed; with progress or a time limit, in slices. The caller
/// holds the call's collective_call.
template <class Do>
void for_each_positions(const communicator& comm, const call_signature& asked, std::int64_t n, const schedule& s,
                        const call_options& opts, const std::string& range, Do&& work) {
  const call_signature sig = with_options(asked, opts);
  const checkpoint& cp = opts.checkpoint;
  if (!cp) {
    run_chunks(comm, sig, opts, n, s, work);
    return;
  }
  call_signature checked = sig;
  checked.checkpointed = true;
  const for_each_kind kind;
  const checkpoint_start start =
      begin_checkpoint(comm, checked, cp, {"for_each", range, schedule_text(s), "none", {}}, kind);
  checkpointed_run(comm, checked, start, n, s, opts, work, [](std::string&) {});
  finish_checkpoint(comm, checked, start, [&] { return checkpoint_record{all_positions(n), {}}; });
}

}  // namespace detail

/// Collective: calls fn(i) for every i in `r` for its side effects, each i on exactly one rank as
/// `s` assigns. Returns when every rank is done. If fn throws on any rank, every rank throws
/// remote_error. `opts`: a checkpoint, progress and a chunk time limit, as for map_reduce (see
/// call_options.hpp).
template <index_type T, std::invocable<T> Fn>
void for_each(const communicator& comm, range<T> r, Fn fn, schedule s = {}, const call_options& opts = {}) {
  const detail::collective_call entered(comm, "for_each");
  const auto sig = detail::signature_of("for_each", r.size(), static_cast<std::uint64_t>(r.first()), s, detail::all_ranks);
  detail::for_each_positions(comm, sig, r.size(), s, opts, detail::range_text(r), [&](const detail::chunk& c) {
    detail::for_each_item(r, c, [&](T i) { std::invoke(fn, i); });
  });
}

/// Collective: the chunk form of for_each; fn receives the sub-ranges of `r` this rank owns.
template <index_type T, std::invocable<range<T>> Fn>
void for_each_chunk(const communicator& comm, range<T> r, Fn fn, schedule s = {}, const call_options& opts = {}) {
  const detail::collective_call entered(comm, "for_each_chunk");
  auto sig = detail::signature_of("for_each_chunk", r.size(), static_cast<std::uint64_t>(r.first()), s, detail::all_ranks);
  sig.whole_chunks = true;
  detail::for_each_positions(comm, sig, r.size(), s, opts, detail::range_text(r), [&](const detail::chunk& c) {
    detail::for_each_subrange(r, c, [&](const range<T>& sub) { std::invoke(fn, sub); });
  });
}

/// Collective: calls fn(item) for each item of `items` as given on rank 0 (broadcast first; the
/// other ranks' vectors are ignored), each item on exactly one rank.
template <class Item, std::invocable<const Item&> Fn>
void for_each(const communicator& comm, std::vector<Item> items, Fn fn, schedule s = {}, const call_options& opts = {}) {
  {
    // The broadcast is part of the call: the ranks agree on it first, and must not be inside
    // another call here.
    const detail::collective_call entered(comm, "for_each");
    detail::agree_before_broadcast<Item>(comm.native(), "for_each", s, detail::all_ranks, 0);
    detail::broadcast(comm.native(), items, 0);
  }
  const range<std::int64_t> positions{0, static_cast<std::int64_t>(items.size())};
  for_each(comm, positions, [&](std::int64_t i) { std::invoke(fn, std::as_const(items)[static_cast<std::size_t>(i)]); }, s,
           opts);
}

}  // namespace mpiproc
