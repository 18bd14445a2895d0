#pragma once

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/fold_chunks.hpp>
#include <mpiproc/detail/item_shares.hpp>
#include <mpiproc/detail/reduce_partials.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/reduction.hpp>
#include <mpiproc/schedule.hpp>

#include <concepts>
#include <cstring>
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

/// What a reduction keeps of its results (a Part of fold_chunks): this rank's partial result,
/// op-folded over form's fn(x) for the positions it folded, then combined over the ranks.
template <class R, class Op, class Form>
class reduction_part {
 public:
  using result_type = std::optional<R>;
  static constexpr const char* saved_as = "reduction";

  reduction_part(const Op& op, const Form& form) : op_(op), form_(form), partial_(identity_of<R>(op)) {}

  const Form& form() const { return form_; }
  std::string type_name() const { return type_text<R>(); }
  reduction_kind<R, Op> checkpoint_kind() const { return {op_}; }
  void fold(const chunk& c) { partial_ = folded(std::move(partial_), c); }
  // Each piece folds on its own, so that the partial result always covers exactly the pieces.
  void piece(const chunk& c) { partial_ = op_(std::move(partial_), folded(identity_of<R>(op_), c)); }
  void encode(std::string& out) const { out = to_bytes(partial_); }
  void resume(const checkpoint_record& saved) { saved_ = &saved; }
  std::optional<R> combine(const communicator& comm, int root) {
    if (saved_) partial_ = op_(checkpoint_kind().saved(*saved_), std::move(partial_));
    return reduce_partials(comm, std::move(partial_), op_, root);
  }
  std::string payload(const std::optional<R>& result) const { return to_bytes(*result); }

  // A number under an operator mpiproc knows folds within the call's failure agreement: one
  // exchange for the whole call, as a hand-written MPI_Allreduce.
  static constexpr bool fusable =
      known_op_applies<Op, R>() && std::is_arithmetic_v<R> && sizeof(R) <= fused_value::capacity;
  void fuse_into(fused_value& value, bool valid) const {
    const R mine = valid ? partial_ : identity_of<R>(op_);
    std::memcpy(value.bytes, &mine, sizeof mine);
    value.op = &op_;
    value.fold = [](const void* op, const void* lower, const void* higher, void* out) {
      R a, b;
      std::memcpy(&a, lower, sizeof a);
      std::memcpy(&b, higher, sizeof b);
      const R folded = static_cast<R>((*static_cast<const Op*>(op))(a, b));
      std::memcpy(out, &folded, sizeof folded);
    };
  }
  std::optional<R> fused_result(const fused_value& value, const communicator& comm, int root) const {
    if (root != all_ranks && comm.rank() != root) return std::nullopt;
    R result;
    std::memcpy(&result, value.bytes, sizeof result);
    return result;
  }

 private:
  R folded(R acc, const chunk& c) const {
    // A local accumulator keeps the hot loop in registers, as in hand-written code.
    form_(c, [&](auto&& value) { acc = op_(std::move(acc), std::forward<decltype(value)>(value)); });
    return acc;
  }

  const Op& op_;
  const Form& form_;
  R partial_;
  const checkpoint_record* saved_ = nullptr;  // rank 0 of a checkpointed call: earlier runs' result
};

template <class T, class Fn, class Op>
using element_result_t = typename reduction_result<Op, std::invoke_result_t<Fn&, T>>::type;

template <class T, class Fn, class Op>
using chunk_result_t = typename reduction_result<Op, std::invoke_result_t<Fn&, range<T>>>::type;

/// Collective: the reduction of `form` (see fold_chunks) with `op`; the caller holds the call's
/// collective_call.
template <class R, class Op, class Form>
std::optional<R> reduce_over(const communicator& comm, const call_signature& sig, const Form& form, const Op& op,
                             const schedule& s, const call_options& opts) {
  reduction_part<R, Op, Form> part(op, form);
  return fold_chunks(comm, sig, s, opts, part);
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
  return *detail::reduce_over<detail::element_result_t<T, Fn, Op>>(comm, sig, detail::items_of<T, Fn>{r, fn}, op, s,
                                                                    opts);
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
  return detail::reduce_over<detail::element_result_t<T, Fn, Op>>(comm, sig, detail::items_of<T, Fn>{r, fn}, op, s,
                                                                   opts);
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
  return *detail::reduce_over<R>(comm, sig, detail::subranges_of<T, Fn>{r, fn}, op, s, opts);
}

/// Collective: op-reduces fn(item) over the items of `items` as given on rank 0 (the other ranks'
/// vectors are ignored). The result on every rank. Each rank receives only the items it computes,
/// as for map over items (see map.hpp). A checkpoint knows the items by their count only: let its
/// tag name them.
template <class Item, std::invocable<const Item&> Fn, class Op>
  requires detail::reduction_for<Op, detail::element_result_t<const Item&, Fn, Op>>
detail::element_result_t<const Item&, Fn, Op> map_reduce(const communicator& comm, std::vector<Item> items, Fn fn,
                                                         Op op, schedule s = {}, const call_options& opts = {}) {
  using R = detail::element_result_t<const Item&, Fn, Op>;
  const detail::collective_call entered(comm, "map_reduce");
  return detail::over_items(comm, "map_reduce", items, fn, s, 0, detail::all_ranks, opts,
                            [&](const auto& form, std::int64_t n) {
                              const auto sig = detail::signature_of<Op, R>("map_reduce", n, 0, s, detail::all_ranks);
                              return *detail::reduce_over<R>(comm, sig, form, op, s, opts);
                            });
}

}  // namespace mpiproc
