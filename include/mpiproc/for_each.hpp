#pragma once

#include <mpiproc/communicator.hpp>
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

/// Collective: calls fn(i) for every i in `r` for its side effects, each i on exactly one rank as
/// `s` assigns. Returns when every rank is done. If fn throws on any rank, every rank throws
/// remote_error.
template <index_type T, std::invocable<T> Fn>
void for_each(const communicator& comm, range<T> r, Fn fn, schedule s = {}) {
  const detail::collective_call entered(comm, "for_each");
  const auto sig = detail::signature_of("for_each", r.size(), static_cast<std::uint64_t>(r.first()), s, detail::all_ranks);
  detail::run_collectively(comm.native(), sig, [&] {
    detail::for_each_owned_chunk(comm, r.size(), s, [&](const detail::chunk& c) {
      detail::for_each_item(r, c, [&](T i) { std::invoke(fn, i); });
    });
  });
}

/// Collective: the chunk form of for_each; fn receives the sub-ranges of `r` this rank owns.
template <index_type T, std::invocable<range<T>> Fn>
void for_each_chunk(const communicator& comm, range<T> r, Fn fn, schedule s = {}) {
  const detail::collective_call entered(comm, "for_each_chunk");
  const auto sig =
      detail::signature_of("for_each_chunk", r.size(), static_cast<std::uint64_t>(r.first()), s, detail::all_ranks);
  detail::run_collectively(comm.native(), sig, [&] {
    detail::for_each_owned_chunk(comm, r.size(), s, [&](const detail::chunk& c) {
      detail::for_each_subrange(r, c, [&](const range<T>& sub) { std::invoke(fn, sub); });
    });
  });
}

/// Collective: calls fn(item) for each item of `items` as given on rank 0 (broadcast first; the
/// other ranks' vectors are ignored), each item on exactly one rank.
template <class Item, std::invocable<const Item&> Fn>
void for_each(const communicator& comm, std::vector<Item> items, Fn fn, schedule s = {}) {
  const detail::collective_call entered(comm, "for_each");
  detail::agree_before_broadcast<Item>(comm.native(), "for_each", s, detail::all_ranks, 0);
  detail::broadcast(comm.native(), items, 0);
  const auto n = static_cast<std::int64_t>(items.size());
  const auto sig = detail::signature_of("for_each", n, 0, s, detail::all_ranks);
  detail::run_collectively(comm.native(), sig, [&] {
    detail::for_each_owned_chunk(comm, n, s, [&](const detail::chunk& c) {
      detail::for_each_item(range<std::int64_t>{0, n}, c,
                            [&](std::int64_t i) { std::invoke(fn, std::as_const(items)[static_cast<std::size_t>(i)]); });
    });
  });
}

}  // namespace mpiproc
