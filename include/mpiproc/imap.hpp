#pragma once

// Streaming results, like Pool.imap and Pool.imap_unordered: every rank computes, and each
// result reaches one consumer rank as soon as the piece it belongs to is done, where a function
// of the consumer's takes it (Python's `for r in pool.imap(...)` loop body). Memory stays
// bounded by a window, not by the number of results.

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/fold_chunks.hpp>
#include <mpiproc/detail/item_shares.hpp>
#include <mpiproc/detail/result_stream.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/map_reduce.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/schedule.hpp>

#include <concepts>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc {

/// What takes the results of a stream on the consumer rank: consume(position, result), position
/// counting the inputs from 0, or consume(result).
template <class Consume, class R>
concept result_consumer = std::invocable<Consume&, std::int64_t, R&&> || std::invocable<Consume&, R&&>;

namespace detail {

template <class R, class Consume>
void consume_one(Consume& consume, std::int64_t position, R&& result) {
  if constexpr (std::invocable<Consume&, std::int64_t, R&&>)
    consume(position, std::move(result));
  else
    consume(std::move(result));
}

/// Collective: streams form's results to `consumer`, handing them to `consume` there (see imap);
/// then the call's failure agreement. The caller holds the call's collective_call.
template <class R, class Form, class Consume>
void stream_over(const communicator& comm, const call_signature& sig, const Form& form, const schedule& s,
                 int consumer, bool ordered, Consume& consume) {
  const MPI_Comm c = comm.native();
  const std::int64_t n = form.size();
  std::exception_ptr failure;
  piece_sizer sizer(most_in_piece<R>());
  if (comm.rank() == consumer) {
    auto deliver = [&consume](std::int64_t at, auto&& value) {
      consume_one<R>(consume, at, R(std::forward<decltype(value)>(value)));
    };
    stream_consumer<R, decltype(deliver)> stream(c, comm.rank(), comm.size(), ordered, deliver);
    try {
      for_each_owned_chunk(comm, n, s, [&](const chunk& ch) {
        for_each_piece(ch, sizer, [&](const chunk& p) { stream.compute(form, p, sizer); });
      });
      stream.drain();
      if (ordered && !stream.failed() && stream.front() != n)
        throw error("mpiproc: imap: handed on " + std::to_string(stream.front()) + " results of " + std::to_string(n) +
                    " (a bug)");
    } catch (const stream_stopped&) {
      stream.drain();  // another rank failed: the agreement reports it
    } catch (...) {
      failure = std::current_exception();
      stream.fail();
      try {
        stream.drain();  // the other ranks' pieces, dropped, so that every rank reaches the agreement
      } catch (...) {
      }
    }
  } else {
    piece_sender sender(c, consumer);
    try {
      for_each_owned_chunk(comm, n, s, [&](const chunk& ch) {
        for_each_piece(ch, sizer, [&](const chunk& p) {
          std::string& out = sender.begin(p);
          sizer.restart();  // the piece's work, not the wait for a credit
          form(p, [&](auto&& value) { append_field(out, static_cast<const R&>(value)); });
          sender.send();
        });
      });
    } catch (...) {
      failure = std::current_exception();
    }
    sender.finish(failure != nullptr);
  }
  agree_on_failure(c, failure, &sig);
}

template <class T, class Fn, class Consume>
void stream_range(const communicator& comm, const char* call, const range<T>& r, Fn& fn, Consume& consume,
                  const schedule& s, int consumer) {
  using R = std::decay_t<std::invoke_result_t<Fn&, T>>;
  check_root(comm, consumer);
  const collective_call entered(comm, call);
  const auto sig = signature_of<void, R>(call, r.size(), static_cast<std::uint64_t>(r.first()), s, consumer);
  // The ranks agree on the call first: a rank that took another rank for the consumer would wait
  // for messages that never come.
  agree_on_failure(comm.native(), nullptr, &sig);
  stream_over<R>(comm, sig, items_of<T, Fn>{r, fn}, s, consumer, std::string_view(call) == "imap", consume);
}

template <class Item, class Fn, class Consume>
void stream_items(const communicator& comm, const char* call, std::vector<Item>& items, Fn& fn, Consume& consume,
                  const schedule& s, int consumer) {
  using R = std::decay_t<std::invoke_result_t<Fn&, const Item&>>;
  check_root(comm, consumer);
  const collective_call entered(comm, call);
  over_items(comm, call, items, fn, s, consumer, consumer, call_options{}, [&](const auto& form, std::int64_t n) {
    stream_over<R>(comm, signature_of<void, R>(call, n, 0, s, consumer), form, s, consumer,
                   std::string_view(call) == "imap", consume);
  });
}

}  // namespace detail

/// Collective, like Pool.imap_unordered: fn(i) for every i in `r`, computed on every rank as `s`
/// says (dynamic by default), each result handed to consume(position, result) (or
/// consume(result)) on `consumer` as soon as the piece it belongs to is done, in completion order.
/// Only `consumer` calls `consume`, on its own thread, between its own pieces of work: the other
/// ranks' `consume` is never called.
///
/// Memory: each rank sends its results in pieces (at most 64 Ki results and 1 MiB of trivially
/// copyable results, 1 Ki results of other types; smaller while a piece takes over 20 ms), and may
/// have at most 4 pieces sent that the consumer has not taken yet. The consumer so holds at most
/// 5 pieces per rank (4 on their way, 1 being handed on), whatever the number of results; a
/// consumer slower than the other ranks holds them back (they wait for it) rather than piling
/// results up.
///
/// If fn throws on any rank, or consume on the consumer, every rank throws remote_error (the
/// results after the failure are dropped; those handed on before it stay handed on). No
/// call_options: a stream keeps no checkpoint (consume has handed its results on already) and
/// shows no progress of its own (consume sees every result and can).
template <index_type T, std::invocable<T> Fn, result_consumer<std::decay_t<std::invoke_result_t<Fn&, T>>> Consume>
  requires(!std::is_void_v<std::invoke_result_t<Fn&, T>>)
void imap_unordered(const communicator& comm, range<T> r, Fn fn, Consume consume,
                    schedule s = schedule::dynamic(), int consumer = 0) {
  detail::stream_range(comm, "imap_unordered", r, fn, consume, s, consumer);
}

/// Collective, like Pool.imap: as imap_unordered, but the results reach consume in input order.
/// A piece that comes before its turn waits on the consumer, at most 4 pieces per rank (the
/// consumer's own included): a rank that is that far ahead waits until the results before its own
/// are handed on.
template <index_type T, std::invocable<T> Fn, result_consumer<std::decay_t<std::invoke_result_t<Fn&, T>>> Consume>
  requires(!std::is_void_v<std::invoke_result_t<Fn&, T>>)
void imap(const communicator& comm, range<T> r, Fn fn, Consume consume, schedule s = schedule::dynamic(),
          int consumer = 0) {
  detail::stream_range(comm, "imap", r, fn, consume, s, consumer);
}

/// Collective: imap_unordered over the items of `items` as given on `consumer` (the other ranks'
/// vectors are ignored): each rank receives only the items it computes, as for map over items
/// (map.hpp); consume gets each item's position in `items`.
template <class Item, std::invocable<const Item&> Fn,
          result_consumer<std::decay_t<std::invoke_result_t<Fn&, const Item&>>> Consume>
  requires(!std::is_void_v<std::invoke_result_t<Fn&, const Item&>>)
void imap_unordered(const communicator& comm, std::vector<Item> items, Fn fn, Consume consume,
                    schedule s = schedule::dynamic(), int consumer = 0) {
  detail::stream_items(comm, "imap_unordered", items, fn, consume, s, consumer);
}

/// Collective: imap over the items of `items` as given on `consumer`, the results in input order.
template <class Item, std::invocable<const Item&> Fn,
          result_consumer<std::decay_t<std::invoke_result_t<Fn&, const Item&>>> Consume>
  requires(!std::is_void_v<std::invoke_result_t<Fn&, const Item&>>)
void imap(const communicator& comm, std::vector<Item> items, Fn fn, Consume consume, schedule s = schedule::dynamic(),
          int consumer = 0) {
  detail::stream_items(comm, "imap", items, fn, consume, s, consumer);
}

}  // namespace mpiproc
