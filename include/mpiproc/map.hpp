#pragma once

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/call_monitor.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/map_reduce.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/schedule.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc {

namespace detail {

/// Collective: the results every rank computed (`chunks`: offset, count, stride in the order of
/// `results`), in position order on `root` (or every rank for all_ranks); other ranks get an empty
/// vector.
template <class R>
std::vector<R> gather_in_order(const communicator& comm, std::int64_t n, std::vector<std::int64_t> chunks,
                               std::vector<R> results, int root) {
  std::vector<std::int64_t> chunk_counts, result_counts;
  const std::vector<std::int64_t> all_chunks = gather_concat(comm.native(), std::move(chunks), root, chunk_counts);
  std::vector<R> all_results = gather_concat(comm.native(), std::move(results), root, result_counts);
  if (root != all_ranks && comm.rank() != root) return std::vector<R>{};

  // source[p]: where the result for position p sits in the rank-ordered concatenation.
  std::vector<std::int64_t> source(static_cast<std::size_t>(n));
  std::int64_t next = 0;
  bool in_order = true;
  for (std::size_t k = 0; k + 2 < all_chunks.size(); k += 3)
    for (std::int64_t j = 0, p = all_chunks[k]; j < all_chunks[k + 1]; ++j, p += all_chunks[k + 2], ++next) {
      source[static_cast<std::size_t>(p)] = next;
      in_order = in_order && p == next;
    }
  if (in_order) return all_results;  // block schedule: rank order is input order

  std::vector<R> ordered;
  ordered.reserve(static_cast<std::size_t>(n));
  for (const std::int64_t from : source) ordered.push_back(std::move(all_results[static_cast<std::size_t>(from)]));
  return ordered;
}

/// Collective: at(i) for every position i in [0, n), computed where `s` says, returned in position
/// order on `root` (or every rank for all_ranks); other ranks get an empty vector. With a
/// checkpoint (`range` names the range in its file), only the positions no earlier run completed
/// are computed, and rank 0 adds the saved results; with progress or a time limit, in slices. The
/// caller holds the call's collective_call.
template <class At>
auto map_positions(const communicator& comm, const call_signature& asked, std::int64_t n, At& at, const schedule& s,
                   int root, const call_options& opts = {}, const std::string& range = {}) {
  const call_signature sig = with_options(asked, opts);
  const checkpoint& cp = opts.checkpoint;
  using R = std::decay_t<std::invoke_result_t<At&, std::int64_t>>;
  std::vector<std::int64_t> chunks;  // (offset, count, stride) in the order this rank computed them
  std::vector<R> results;
  auto compute = [&](const chunk& c) {
    chunks.insert(chunks.end(), {c.offset, c.count, c.stride});
    for (std::int64_t k = 0; k < c.count; ++k) results.push_back(std::invoke(at, c.offset + k * c.stride));
  };
  if (!cp) {
    run_chunks(comm, sig, opts, n, s, compute);
    return gather_in_order(comm, n, std::move(chunks), std::move(results), root);
  }

  call_signature checked = sig;
  checked.checkpointed = true;
  const map_kind<R> kind;
  const checkpoint_start start =
      begin_checkpoint(comm, checked, cp, {"map", range, schedule_text(s), type_text<R>(), {}}, kind);
  if (comm.rank() == 0) {
    for (const chunk& c : start.merged.runs) chunks.insert(chunks.end(), {c.offset, c.count, c.stride});
    results = map_kind<R>::results(start.merged);
  }
  const std::size_t saved = results.size();
  std::size_t completed = saved, encoded = saved;  // results that are whole pieces; in the payload
  checkpointed_run(
      comm, checked, start, n, s, opts,
      [&](const chunk& c) {
        compute(c);
        completed = results.size();
      },
      [&](std::string& out) {
        for (; encoded < completed; ++encoded) map_kind<R>::append(out, results[encoded]);
      });
  // Rank 0 writes the whole answer, so it gets the results even where only another root would.
  std::vector<R> ordered =
      gather_in_order(comm, n, std::move(chunks), std::move(results), root == 0 ? 0 : all_ranks);
  finish_checkpoint(comm, checked, start, [&] {
    checkpoint_record whole{all_positions(n), {}};
    for (const auto& result : ordered) map_kind<R>::append(whole.payload, result);
    return whole;
  });
  if (root != all_ranks && comm.rank() != root) return std::vector<R>{};
  return ordered;
}

template <class T, class Fn>
auto map_range(const communicator& comm, const char* call, const range<T>& r, Fn& fn, const schedule& s, int root,
               const call_options& opts) {
  using R = std::decay_t<std::invoke_result_t<Fn&, T>>;
  const collective_call entered(comm, call);
  const auto sig = signature_of<void, R>(call, r.size(), static_cast<std::uint64_t>(r.first()), s, root);
  auto at = [&](std::int64_t i) -> decltype(auto) { return std::invoke(fn, r.at_offset(i)); };
  return map_positions(comm, sig, r.size(), at, s, root, opts, range_text(r));
}

template <class Item, class Fn>
auto map_items(const communicator& comm, const char* call, std::vector<Item>& items, Fn& fn, const schedule& s,
               int source, int root, const call_options& opts) {
  using R = std::decay_t<std::invoke_result_t<Fn&, const Item&>>;
  const collective_call entered(comm, call);
  agree_before_broadcast<Item>(comm.native(), call, s, root, source);
  broadcast(comm.native(), items, source);
  const auto sig = signature_of<void, R>(call, static_cast<std::int64_t>(items.size()), 0, s, root);
  auto at = [&](std::int64_t i) -> decltype(auto) { return std::invoke(fn, std::as_const(items)[static_cast<std::size_t>(i)]); };
  return map_positions(comm, sig, static_cast<std::int64_t>(items.size()), at, s, root, opts,
                       items_text(static_cast<std::int64_t>(items.size())));
}

}  // namespace detail

/// Collective, like Pool.map: fn(i) for every i in `r`, computed where `s` says, returned in input
/// order on every rank. If fn throws on any rank, every rank throws remote_error. `opts`: a
/// checkpoint, progress and a chunk time limit, as for map_reduce (see call_options.hpp).
template <index_type T, std::invocable<T> Fn>
std::vector<std::decay_t<std::invoke_result_t<Fn&, T>>> map(const communicator& comm, range<T> r, Fn fn,
                                                           schedule s = {}, const call_options& opts = {}) {
  return detail::map_range(comm, "map", r, fn, s, detail::all_ranks, opts);
}

/// Collective: as map over a range, but the results only on `root` (empty on the other ranks).
template <index_type T, std::invocable<T> Fn>
std::vector<std::decay_t<std::invoke_result_t<Fn&, T>>> map_root(const communicator& comm, int root, range<T> r,
                                                                Fn fn, schedule s = {}, const call_options& opts = {}) {
  detail::check_root(comm, root);
  return detail::map_range(comm, "map_root", r, fn, s, root, opts);
}

/// Collective, like Pool.map(f, items): fn(item) for each item of `items` as given on rank 0 (the
/// other ranks' vectors are ignored; the items are broadcast), in input order on every rank.
template <class Item, std::invocable<const Item&> Fn>
std::vector<std::decay_t<std::invoke_result_t<Fn&, const Item&>>> map(const communicator& comm,
                                                                     std::vector<Item> items, Fn fn,
                                                                     schedule s = {}, const call_options& opts = {}) {
  return detail::map_items(comm, "map", items, fn, s, 0, detail::all_ranks, opts);
}

/// Collective: fn(item) for each item of `items` as given on `root`, the results in input order on
/// `root` only (empty on the other ranks): the shape of a Pool.map call made by one process.
template <class Item, std::invocable<const Item&> Fn>
std::vector<std::decay_t<std::invoke_result_t<Fn&, const Item&>>> map_root(const communicator& comm, int root,
                                                                          std::vector<Item> items, Fn fn,
                                                                          schedule s = {}, const call_options& opts = {}) {
  detail::check_root(comm, root);
  return detail::map_items(comm, "map_root", items, fn, s, root, root, opts);
}

}  // namespace mpiproc
