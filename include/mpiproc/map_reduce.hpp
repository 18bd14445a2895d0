#pragma once

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/call_monitor.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/reduce_partials.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/reduction.hpp>
#include <mpiproc/schedule.hpp>

#include <concepts>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc {

namespace detail {

inline void check_root(const communicator& comm, int root) {
  if (root < 0 || root >= comm.size())
    throw usage_error("mpiproc: root rank " + std::to_string(root) + " is outside the communicator [0, " +
                      std::to_string(comm.size()) + ")");
}

/// The heart of every reduction: each rank folds the chunks it owns into one partial result with
/// `fold(chunk, partial)`, the ranks agree on failures and on the call, then the partials are
/// combined. With a checkpoint (`range` names the range in its file), only the positions no
/// earlier run completed are folded, and rank 0 adds the saved partial result; with progress or
/// a time limit, the chunks are folded in slices. The caller holds the call's collective_call.
template <class R, class Op, class Fold>
std::optional<R> fold_and_reduce(const communicator& comm, const call_signature& asked, std::int64_t n,
                                 const schedule& s, const Op& op, Fold&& fold, int root,
                                 const call_options& opts = {}, const std::string& range = {}) {
  const call_signature sig = with_options(asked, opts);
  const checkpoint& cp = opts.checkpoint;
  R partial = identity_of<R>(op);
  if (!cp) {
    run_chunks(comm, sig, opts, n, s, [&](const chunk& c) { fold(c, partial); });
    return reduce_partials(comm, std::move(partial), op, root);
  }
  call_signature checked = sig;
  checked.checkpointed = true;
  const reduction_kind<R, Op> kind{op};
  const checkpoint_start start =
      begin_checkpoint(comm, checked, cp, {"reduction", range, schedule_text(s), type_text<R>(), {}}, kind);
  checkpointed_run(
      comm, checked, start, n, s, opts,
      [&](const chunk& c) {
        // Each piece folds on its own, so that `partial` always covers exactly the recorded pieces.
        R piece = identity_of<R>(op);
        fold(c, piece);
        partial = op(std::move(partial), std::move(piece));
      },
      [&](std::string& out) { out = to_bytes(partial); });
  if (comm.rank() == 0) partial = op(kind.saved(start.merged), std::move(partial));
  // Rank 0 writes the whole answer, so it gets the result even where only another root would.
  std::optional<R> result = reduce_partials(comm, std::move(partial), op, root == 0 ? 0 : all_ranks);
  finish_checkpoint(comm, checked, start, [&] { return checkpoint_record{all_positions(n), to_bytes(*result)}; });
  if (root != all_ranks && comm.rank() != root) return std::nullopt;
  return result;
}

template <class T, class Fn, class Op>
using element_result_t = typename reduction_result<Op, std::invoke_result_t<Fn&, T>>::type;

template <class T, class Fn, class Op>
using chunk_result_t = typename reduction_result<Op, std::invoke_result_t<Fn&, range<T>>>::type;

template <class T, class Fn, class Op>
std::optional<element_result_t<T, Fn, Op>> map_reduce_elements(const communicator& comm, const call_signature& sig,
                                                               const range<T>& r, Fn& fn, const Op& op,
                                                               const schedule& s, int root,
                                                               const call_options& opts, const std::string& range) {
  using R = element_result_t<T, Fn, Op>;
  return fold_and_reduce<R>(comm, sig, r.size(), s, op,
                            [&](const chunk& c, R& partial) {
                              // A local accumulator keeps the hot loop in registers, as in hand-written code.
                              R acc = std::move(partial);
                              for_each_item(r, c, [&](T i) { acc = op(std::move(acc), std::invoke(fn, i)); });
                              partial = std::move(acc);
                            },
                            root, opts, range);
}

}  // namespace detail

/// Collective: op-reduces fn(i) over every i in `r`, each i visited by exactly one rank as `s`
/// assigns; the result on every rank. `op` must be associative and commutative: std::plus,
/// std::multiplies, the std bit and logical operators, mpiproc::minimum and mpiproc::maximum are
/// known with their identities; wrap any other operator as mpiproc::reduction{op, identity}.
/// An empty range gives the identity. If fn throws on any rank, every rank throws remote_error.
/// `opts`: a checkpoint records completed chunks so that a rerun computes only the rest (see
/// checkpoint.hpp; SIGTERM or SIGUSR1 then throw interrupted on every rank); progress shows the
/// whole call's progress on rank 0 (progress.hpp); a chunk_time_limit fails the call on every rank
/// when a chunk runs past it (chunk_time_limit.hpp). Each of them, or several as a braced list.
template <index_type T, std::invocable<T> Fn, class Op>
  requires detail::reduction_for<Op, detail::element_result_t<T, Fn, Op>>
detail::element_result_t<T, Fn, Op> map_reduce(const communicator& comm, range<T> r, Fn fn, Op op, schedule s = {},
                                               const call_options& opts = {}) {
  const detail::collective_call entered(comm, "map_reduce");
  const auto sig = detail::signature_of<Op, detail::element_result_t<T, Fn, Op>>(
      "map_reduce", r.size(), static_cast<std::uint64_t>(r.first()), s, detail::all_ranks);
  return *detail::map_reduce_elements(comm, sig, r, fn, op, s, detail::all_ranks, opts, detail::range_text(r));
}

/// Collective: as map_reduce, but the result only on `root` (std::nullopt on the other ranks),
/// which saves the broadcast. Throws usage_error if root is not a rank of `comm`.
template <index_type T, std::invocable<T> Fn, class Op>
  requires detail::reduction_for<Op, detail::element_result_t<T, Fn, Op>>
std::optional<detail::element_result_t<T, Fn, Op>> map_reduce_root(const communicator& comm, int root, range<T> r,
                                                                   Fn fn, Op op, schedule s = {},
                                                                   const call_options& opts = {}) {
  detail::check_root(comm, root);
  const detail::collective_call entered(comm, "map_reduce_root");
  const auto sig = detail::signature_of<Op, detail::element_result_t<T, Fn, Op>>(
      "map_reduce_root", r.size(), static_cast<std::uint64_t>(r.first()), s, root);
  return detail::map_reduce_elements(comm, sig, r, fn, op, s, root, opts, detail::range_text(r));
}

/// Collective: the chunk form of map_reduce. fn receives whole sub-ranges of `r` (the chunks `s`
/// gives this rank) and returns their partial result, so tight inner loops stay hand-written.
/// Each item of `r` lies in exactly one chunk passed to one rank.
template <index_type T, std::invocable<range<T>> Fn, class Op>
  requires detail::reduction_for<Op, detail::chunk_result_t<T, Fn, Op>>
detail::chunk_result_t<T, Fn, Op> map_reduce_chunks(const communicator& comm, range<T> r, Fn fn, Op op,
                                                    schedule s = {}, const call_options& opts = {}) {
  using R = detail::chunk_result_t<T, Fn, Op>;
  const detail::collective_call entered(comm, "map_reduce_chunks");
  auto sig = detail::signature_of<Op, R>("map_reduce_chunks", r.size(), static_cast<std::uint64_t>(r.first()), s,
                                         detail::all_ranks);
  sig.whole_chunks = true;
  return *detail::fold_and_reduce<R>(comm, sig, r.size(), s, op,
                                     [&](const detail::chunk& c, R& partial) {
                                       detail::for_each_subrange(r, c, [&](const range<T>& sub) {
                                         partial = op(std::move(partial), std::invoke(fn, sub));
                                       });
                                     },
                                     detail::all_ranks, opts, detail::range_text(r));
}

/// Collective: op-reduces fn(item) over the items of `items` as given on rank 0 (the other ranks'
/// vectors are ignored; the items are broadcast first). The result on every rank. A checkpoint
/// knows the items by their count only: let its tag name them.
template <class Item, std::invocable<const Item&> Fn, class Op>
  requires detail::reduction_for<Op, detail::element_result_t<const Item&, Fn, Op>>
detail::element_result_t<const Item&, Fn, Op> map_reduce(const communicator& comm, std::vector<Item> items, Fn fn,
                                                         Op op, schedule s = {}, const call_options& opts = {}) {
  using R = detail::element_result_t<const Item&, Fn, Op>;
  const detail::collective_call entered(comm, "map_reduce");
  detail::agree_before_broadcast<Item>(comm.native(), "map_reduce", s, detail::all_ranks, 0);
  detail::broadcast(comm.native(), items, 0);
  auto at = [&](std::int64_t i) -> decltype(auto) { return std::invoke(fn, std::as_const(items)[static_cast<std::size_t>(i)]); };
  const range<std::int64_t> positions{0, static_cast<std::int64_t>(items.size())};
  const auto sig = detail::signature_of<Op, R>("map_reduce", positions.size(), 0, s, detail::all_ranks);
  return *detail::map_reduce_elements(comm, sig, positions, at, op, s, detail::all_ranks, opts,
                                      detail::items_text(positions.size()));
}

}  // namespace mpiproc
