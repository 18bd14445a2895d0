#pragma once

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/fold_chunks.hpp>
#include <mpiproc/detail/item_shares.hpp>
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

/// What a for_each keeps of its results (a Part of fold_chunks): nothing but which positions
/// are done, which checkpointed_run records.
template <class Form>
class for_each_part {
 public:
  struct result_type {};
  static constexpr const char* saved_as = "for_each";

  explicit for_each_part(const Form& form) : form_(form) {}

  const Form& form() const { return form_; }
  std::string type_name() const { return "none"; }
  for_each_kind checkpoint_kind() const { return {}; }
  void fold(const chunk& c) { form_(c, [](auto&&...) {}); }
  void piece(const chunk& c) { fold(c); }
  void encode(std::string&) const {}
  void resume(const checkpoint_record&) const {}
  result_type combine(const communicator&, int) const { return {}; }
  std::string payload(const result_type&) const { return {}; }

 private:
  const Form& form_;
};

/// Collective: fn for each x of `form` (see fold_chunks); the caller holds the call's collective_call.
template <class Form>
void for_each_over(const communicator& comm, const call_signature& sig, const Form& form, const schedule& s,
                   const call_options& opts) {
  for_each_part<Form> part(form);
  fold_chunks(comm, sig, s, opts, part);
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
  detail::for_each_over(comm, sig, detail::items_of<T, Fn>{r, fn}, s, opts);
}

/// Collective: the chunk form of for_each; fn receives the sub-ranges of `r` this rank owns.
template <index_type T, std::invocable<range<T>> Fn>
void for_each_chunks(const communicator& comm, range<T> r, Fn fn, schedule s = {}, const call_options& opts = {}) {
  const detail::collective_call entered(comm, "for_each_chunks");
  auto sig = detail::signature_of("for_each_chunks", r.size(), static_cast<std::uint64_t>(r.first()), s, detail::all_ranks);
  sig.whole_chunks = true;
  detail::for_each_over(comm, sig, detail::subranges_of<T, Fn>{r, fn}, s, opts);
}

/// Collective: calls fn(item) for each item of `items` as given on rank 0 (the other ranks'
/// vectors are ignored), each item on exactly one rank, which receives only the items it computes
/// (as for map over items, see map.hpp).
template <class Item, std::invocable<const Item&> Fn>
void for_each(const communicator& comm, std::vector<Item> items, Fn fn, schedule s = {}, const call_options& opts = {}) {
  const detail::collective_call entered(comm, "for_each");
  detail::over_items(comm, "for_each", items, fn, s, 0, detail::all_ranks, opts, [&](const auto& form, std::int64_t n) {
    detail::for_each_over(comm, detail::signature_of("for_each", n, 0, s, detail::all_ranks), form, s, opts);
  });
}

}  // namespace mpiproc
