#pragma once

// The run of every map call (map_reduce, map, for_each, their root, chunk and items forms): this
// rank's chunks of the schedule, each folded through the user's function into what the call keeps
// of its results, with progress, chunk time limits, checkpoints and the failure agreement. The
// public headers only say what a call keeps (a `part`) and how its function meets a chunk (a form).

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/call_monitor.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/item_server.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/schedule.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc::detail {

// The forms: how the user's function meets a chunk. form(c, use) calls use(fn(x)) for each x of
// the chunk c in order (use() where fn returns nothing); size() is the call's number of positions
// and text() names them in a checkpoint's file.

/// Calls use(fn(x)), or fn(x) then use() for a function that returns nothing.
template <class Fn, class X, class Use>
void pass_result(Fn& fn, X&& x, Use& use) {
  if constexpr (std::is_void_v<std::invoke_result_t<Fn&, X>>) {
    std::invoke(fn, std::forward<X>(x));
    use();
  } else {
    use(std::invoke(fn, std::forward<X>(x)));
  }
}

/// The element forms: fn gets each item of `r` at the chunk's positions, a tight loop once inlined.
template <class T, class Fn>
struct items_of {
  const range<T>& r;
  Fn& fn;

  std::int64_t size() const { return r.size(); }
  std::string text() const { return range_text(r); }
  template <class Use>
  void operator()(const chunk& c, Use&& use) const {
    if (c.stride == 1) {
      const T last = r.at_offset(c.offset + c.count);
      for (T i = r.at_offset(c.offset); i != last; ++i) pass_result(fn, i, use);
    } else {
      // Unsigned arithmetic: never steps past the range, and wraps exactly for signed types.
      const auto stride = static_cast<std::uint64_t>(c.stride);
      auto item = static_cast<std::uint64_t>(r.at_offset(c.offset));
      for (auto left = static_cast<std::uint64_t>(c.count); left != 0; --left, item += stride)
        pass_result(fn, static_cast<T>(item), use);
    }
  }
};

/// The chunk forms: fn gets each contiguous sub-range of `r` the chunk covers (one item each when
/// the chunk is strided).
template <class T, class Fn>
struct subranges_of {
  const range<T>& r;
  Fn& fn;

  std::int64_t size() const { return r.size(); }
  std::string text() const { return range_text(r); }
  template <class Use>
  void operator()(const chunk& c, Use&& use) const {
    if (c.stride == 1) {
      pass_result(fn, r.subrange(c.offset, c.count), use);
    } else {
      for (std::int64_t k = 0; k < c.count; ++k) pass_result(fn, r.subrange(c.offset + k * c.stride, 1), use);
    }
  }
};

/// The items forms: fn gets the items of `items` at the chunk's positions.
template <class Item, class Fn>
struct listed_items {
  const std::vector<Item>& items;
  Fn& fn;

  std::int64_t size() const { return static_cast<std::int64_t>(items.size()); }
  std::string text() const { return items_text(size()); }
  template <class Use>
  void operator()(const chunk& c, Use&& use) const {
    for (std::int64_t k = 0, at = c.offset; k < c.count; ++k, at += c.stride)
      pass_result(fn, items[static_cast<std::size_t>(at)], use);
  }
};

/// The items forms on a rank that holds only its own share of the items (see scatter_shares): fn
/// gets them in turn, as the rank's chunks come. `next` counts the items used so far.
template <class Item, class Fn>
struct own_share {
  const std::vector<Item>& share;
  std::int64_t n;  // the items of the call, on all ranks
  Fn& fn;
  std::size_t& next;

  std::int64_t size() const { return n; }
  std::string text() const { return items_text(n); }
  template <class Use>
  void operator()(const chunk& c, Use&& use) const {
    for (std::int64_t k = 0; k < c.count; ++k) pass_result(fn, share[next++], use);
  }
};

/// The items forms on a rank that fetches each chunk's items from the rank that holds them (see
/// item_server) as the chunk comes: dynamic and guided schedules, whose chunks fall anywhere.
/// `run` holds the last chunk's items.
template <class Item, class Fn>
struct fetched_items {
  item_server& server;
  std::int64_t n;  // the items of the call
  Fn& fn;
  std::vector<Item>& run;

  std::int64_t size() const { return n; }
  std::string text() const { return items_text(n); }
  template <class Use>
  void operator()(const chunk& c, Use&& use) const {
    for (std::int64_t k = 0; k < c.count;) {  // a strided chunk item by item (these schedules give none)
      const std::int64_t many = c.stride == 1 ? c.count : 1;
      const std::string bytes = server.fetch(c.offset + k * c.stride, many);
      decode_into(run, bytes.data(), bytes.size());
      for (const Item& item : run) pass_result(fn, item, use);
      k += many;
    }
  }
};

/// Collective: this rank's chunks of `s` over the positions of part's form, each folded into
/// `part`, then the call's failure agreement and part.combine: the call's result on the root of
/// `asked` (every rank for all_ranks), an empty result on the other ranks. With a checkpoint, only
/// the positions no earlier run completed are folded, as pieces recorded as they complete; rank 0
/// resumes from what earlier runs saved and writes the whole answer at the end. With progress or a
/// time limit, chunks are folded in slices (whole, for a call whose `asked` has whole_chunks). The
/// caller holds the call's collective_call.
///
/// A Part keeps this rank's results (see reduction_part, map_part, for_each_part):
///   result_type, saved_as ("reduction", "map", "for_each"), type_name(), checkpoint_kind(),
///   form() (the user's function, see above);
///   fold(c): fold chunk c through the function;
///   piece(c): the same with a checkpoint, so that the part covers exactly the pieces folded;
///   encode(out): brings `out` up to the payload of the pieces folded (checkpointed_run);
///   resume(saved): rank 0, before the run, what earlier runs saved (outlives combine);
///   combine(comm, root): collective, the call's result; payload(result): the whole answer's;
///   optionally, where `fusable` is true, fuse_into(value, valid) and fused_result(value, comm,
///   root) instead of combine: the result folded within the failure agreement.
template <class Part>
typename Part::result_type fold_chunks(const communicator& comm, const call_signature& asked, const schedule& s,
                                       const call_options& opts, Part& part) {
  const call_signature sig = with_options(asked, opts);
  const std::int64_t n = part.form().size();
  const int root = sig.root;
  if (!opts.checkpoint) {
    auto fold = [&](const chunk& c) { part.fold(c); };
    // A part that can, combines its result within the failure agreement (see fused_value).
    constexpr bool fused = requires { requires Part::fusable; };
    fused_value value;
    run_map_part(
        comm, sig, opts, n, 0,
        [&](auto&& each) { for_each_owned_chunk(comm, n, s, [&](const chunk& c) { each(c, fold); }); },
        [&](std::exception_ptr failure, bool by_watchdog, const settle_fn& settle) {
          // A watchdog agrees for a stuck rank whose main thread may still be changing the part.
          if constexpr (fused) part.fuse_into(value, !failure && !by_watchdog);
          agree_on_failure(comm.native(), failure, &sig, settle, !by_watchdog, fused ? &value : nullptr);
        });
    if constexpr (fused) return part.fused_result(value, comm, root);
    else return part.combine(comm, root);
  }

  call_signature checked = sig;
  checked.checkpointed = true;
  const checkpoint_start start = begin_checkpoint(
      comm, checked, opts.checkpoint,
      {Part::saved_as, part.form().text(), schedule_text(s), part.type_name(), {}}, part.checkpoint_kind());
  if (comm.rank() == 0) part.resume(start.merged);
  checkpointed_run(comm, checked, start, n, s, opts, part);
  // Rank 0 writes the whole answer, so it gets the result even where only another root would.
  typename Part::result_type result = part.combine(comm, root == 0 ? 0 : all_ranks);
  finish_checkpoint(comm, checked, start, [&] { return checkpoint_record{all_positions(n), part.payload(result)}; });
  if (root != all_ranks && comm.rank() != root) return typename Part::result_type{};
  return result;
}

}  // namespace mpiproc::detail
