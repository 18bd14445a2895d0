#pragma once

#include <mpiproc/call_options.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/checkpointed.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/fold_chunks.hpp>
#include <mpiproc/detail/item_shares.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/map_reduce.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/schedule.hpp>

#include <algorithm>
#include <climits>
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

  // Block schedule: rank order is input order, each chunk beginning where the one before ended.
  bool in_order = true;
  std::int64_t next = 0;
  for (std::size_t k = 0; in_order && k + 2 < all_chunks.size(); k += 3) {
    in_order = all_chunks[k] == next && (all_chunks[k + 2] == 1 || all_chunks[k + 1] <= 1);
    next += all_chunks[k + 1];
  }
  if (in_order) return all_results;

  // Each result moves to its position in place, cycle by cycle of the permutation (the result at
  // i belongs at place_of(i)), with one bit per position to mark places filled: no second vector
  // of results and no table of n indices beside them (a root's memory is the results, once).
  std::vector<std::int64_t> starts;  // where each chunk's results begin in the concatenation
  next = 0;
  for (std::size_t k = 0; k + 2 < all_chunks.size(); k += 3) {
    starts.push_back(next);
    next += all_chunks[k + 1];
  }
  const auto place_of = [&](std::int64_t i) {
    const auto k = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), i) - starts.begin() - 1);
    return all_chunks[3 * k] + (i - starts[k]) * all_chunks[3 * k + 2];
  };
  std::vector<bool> filled(static_cast<std::size_t>(n));
  for (std::int64_t start = 0; start < n; ++start) {
    if (filled[static_cast<std::size_t>(start)]) continue;
    R carried = std::move(all_results[static_cast<std::size_t>(start)]);
    for (std::int64_t at = place_of(start); at != start;) {
      const std::int64_t then = place_of(at);
      R displaced = std::move(all_results[static_cast<std::size_t>(at)]);
      all_results[static_cast<std::size_t>(at)] = std::move(carried);
      filled[static_cast<std::size_t>(at)] = true;
      carried = std::move(displaced);
      at = then;
    }
    all_results[static_cast<std::size_t>(start)] = std::move(carried);
    filled[static_cast<std::size_t>(start)] = true;
  }
  return all_results;
}

/// What a map keeps of its results (a Part of fold_chunks): form's fn(x) for each position this
/// rank folded, with the chunks they came from, gathered into position order at the end.
template <class R, class Form>
class map_part {
 public:
  using result_type = std::vector<R>;
  static constexpr const char* saved_as = "map";

  /// `placed`: see placed_directly; `on_root`: see placed_on_root; `whole`: this rank folds
  /// into the whole vector of results (a rank that receives them where placed; the gathering root).
  map_part(const Form& form, bool placed, bool on_root, bool whole)
      : form_(form), placed_(placed), on_root_(!placed && on_root), receives_(whole) {}

  /// Whether a call's results go straight to their places: numbers under a block schedule, where
  /// every rank knows every rank's run of positions. A rank that receives the results then folds
  /// into the whole vector and the others' runs land beside them in one gather, with no chunk
  /// lists and no copy, as in a hand-written MPI_Gatherv with MPI_IN_PLACE.
  static bool placed_directly(std::int64_t n, const schedule& s, const call_options& opts) {
    return placeable && s.type() == schedule::kind::block && !opts.checkpoint && n <= INT_MAX;
  }
  /// Whether, for numbers under any other schedule, one root (rank 0 where every rank gets the
  /// results) folds into the whole vector, then takes the other ranks' results in pieces of 8 MiB
  /// and places each by its chunk: it holds the items, the results and one piece, not every
  /// result twice, and writes each chunk's results in a row instead of permuting them all. Where
  /// every rank gets them, it then broadcasts them.
  static bool placed_on_root(const call_options& opts) { return placeable && !opts.checkpoint; }
  static int gathering_root(int root) { return root == all_ranks ? 0 : root; }

  const Form& form() const { return form_; }
  std::string type_name() const { return type_text<R>(); }
  map_kind<R> checkpoint_kind() const { return {}; }
  void fold(const chunk& c) {
    if (receives_) {
      if (results_.empty()) results_.resize(static_cast<std::size_t>(form_.size()));
      auto at = static_cast<std::size_t>(c.offset);
      const auto stride = static_cast<std::size_t>(c.stride);
      form_(c, [&](auto&& value) {
        results_[at] = std::forward<decltype(value)>(value);
        at += stride;
      });
      return;
    }
    if (!placed_) chunks_.insert(chunks_.end(), {c.offset, c.count, c.stride});
    // A block schedule's one chunk is the rank's whole share: room for it at once, not by doubling.
    if (results_.capacity() == 0) results_.reserve(static_cast<std::size_t>(c.count));
    form_(c, [&](auto&& value) { results_.push_back(std::forward<decltype(value)>(value)); });
  }
  void piece(const chunk& c) {
    fold(c);
    completed_ = results_.size();
  }
  void encode(std::string& out) {
    for (; encoded_ < completed_; ++encoded_) map_kind<R>::append(out, results_[encoded_]);
  }
  void resume(const checkpoint_record& saved) {
    for (const chunk& c : saved.runs) chunks_.insert(chunks_.end(), {c.offset, c.count, c.stride});
    results_ = map_kind<R>::results(saved);
    completed_ = encoded_ = results_.size();  // the saved results are in the main file already
  }
  std::vector<R> combine(const communicator& comm, int root) {
    if constexpr (placeable) {
      if (placed_) return gather_placed(comm, root);
      if (on_root_) return gather_on_root(comm, root);  // then broadcast, for all_ranks
    }
    return gather_in_order(comm, form_.size(), std::move(chunks_), std::move(results_), root);
  }
  std::string payload(const std::vector<R>& results) const {
    std::string out;
    for (const auto& result : results) map_kind<R>::append(out, result);
    return out;
  }

 private:
  static constexpr bool placeable = travels_raw<R> && !std::is_same_v<R, bool>;

  std::vector<R> gather_placed(const communicator& comm, int root) {
    const std::int64_t n = form_.size();
    const MPI_Comm c = comm.native();
    const MPI_Datatype type = raw_type<R>();
    if (root == all_ranks || comm.rank() == root) {
      std::vector<int> counts(static_cast<std::size_t>(comm.size())), places(counts.size());
      for (int r = 0; r < comm.size(); ++r) {
        const chunk run = block_chunk(n, r, comm.size());
        counts[static_cast<std::size_t>(r)] = static_cast<int>(run.count);
        places[static_cast<std::size_t>(r)] = static_cast<int>(run.offset);
      }
      results_.resize(static_cast<std::size_t>(n));  // where this rank had nothing to fold
      if (root == all_ranks)
        MPIPROC_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, type, results_.data(), counts.data(), places.data(), type, c));
      else
        MPIPROC_CHECK(MPI_Gatherv(MPI_IN_PLACE, 0, type, results_.data(), counts.data(), places.data(), type, root, c));
      return std::move(results_);
    }
    MPIPROC_CHECK(MPI_Gatherv(results_.data(), checked_count(results_.size(), "map"), type, nullptr, nullptr, nullptr,
                              type, root, c));
    return {};
  }

  std::vector<R> gather_on_root(const communicator& comm, int asked) {
    const int root = gathering_root(asked);
    const MPI_Comm c = comm.native();
    std::vector<std::int64_t> counts;  // each rank's chunk list, 3 numbers a chunk (none from the root)
    const std::vector<std::int64_t> all_chunks = gather_concat(c, std::move(chunks_), root, counts);
    // Results travel in messages of 8 MiB, so the root's buffer stays that small.
    constexpr auto most = static_cast<std::int64_t>(std::max<std::size_t>(1, (std::size_t{8} << 20) / sizeof(R)));
    if (comm.rank() != root) {
      for (std::size_t sent = 0; sent < results_.size(); sent += most)
        MPIPROC_CHECK(MPI_Send(results_.data() + sent, static_cast<int>(std::min<std::size_t>(most, results_.size() - sent)),
                               raw_type<R>(), root, results_tag, c));
      std::vector<R>().swap(results_);  // room for the whole, where every rank gets it
      return asked == all_ranks ? broadcast_whole(c, root) : std::vector<R>{};
    }
    results_.resize(static_cast<std::size_t>(form_.size()));  // where the root had nothing to fold
    std::vector<R> piece(static_cast<std::size_t>(most));
    std::size_t k = 0;  // rank r's next chunk in all_chunks
    for (int r = 0; r < comm.size(); ++r) {
      const auto end = k + static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
      std::int64_t in_piece = 0, used = 0;  // results received in the piece at hand, placed from it
      for (; k < end; k += 3)
        for (std::int64_t i = 0, at = all_chunks[k]; i < all_chunks[k + 1]; ++i, at += all_chunks[k + 2]) {
          if (used == in_piece) in_piece = receive_piece(piece, r, c), used = 0;
          results_[static_cast<std::size_t>(at)] = piece[static_cast<std::size_t>(used++)];
        }
    }
    std::vector<R>().swap(piece);
    return asked == all_ranks ? broadcast_whole(c, root) : std::move(results_);
  }

  /// Collective: the root's whole results on every rank.
  std::vector<R> broadcast_whole(MPI_Comm c, int root) {
    results_.resize(static_cast<std::size_t>(form_.size()));
    // At most 1 GiB a call: within MPI's int count, and short of the 2 GiB messages some transports mishandle.
    constexpr std::size_t most = std::max<std::size_t>(1, (std::size_t{1} << 30) / sizeof(R));
    for (std::size_t at = 0; at < results_.size(); at += most)
      MPIPROC_CHECK(MPI_Bcast(results_.data() + at, static_cast<int>(std::min(most, results_.size() - at)), raw_type<R>(),
                              root, c));
    return std::move(results_);
  }

  /// The next message of `from`'s results into `piece`; how many it held.
  static std::int64_t receive_piece(std::vector<R>& piece, int from, MPI_Comm c) {
    MPI_Status status;
    MPIPROC_CHECK(MPI_Recv(piece.data(), static_cast<int>(piece.size()), raw_type<R>(), from, results_tag, c, &status));
    int count = 0;
    MPIPROC_CHECK(MPI_Get_count(&status, raw_type<R>(), &count));
    return count;
  }

  static constexpr int results_tag = 2;  // on the private duplicate, within this call alone

  const Form& form_;
  const bool placed_, on_root_, receives_;  // see placed_directly, placed_on_root; receives_: this rank gets the results
  std::vector<std::int64_t> chunks_;  // (offset, count, stride) in the order this rank folded them
  std::vector<R> results_;
  std::size_t completed_ = 0, encoded_ = 0;  // results that are whole pieces; in the payload
};

template <class R, class Form>
std::vector<R> map_over(const communicator& comm, const call_signature& sig, const Form& form, const schedule& s,
                        const call_options& opts) {
  const bool placed = map_part<R, Form>::placed_directly(form.size(), s, opts);
  const bool on_root = !placed && map_part<R, Form>::placed_on_root(opts);
  const bool whole = placed ? sig.root == all_ranks || comm.rank() == sig.root
                            : on_root && comm.rank() == map_part<R, Form>::gathering_root(sig.root);
  map_part<R, Form> part(form, placed, on_root, whole);
  return fold_chunks(comm, sig, s, opts, part);
}

template <class T, class Fn>
auto map_range(const communicator& comm, const char* call, const range<T>& r, Fn& fn, const schedule& s, int root,
               const call_options& opts) {
  using R = std::decay_t<std::invoke_result_t<Fn&, T>>;
  const collective_call entered(comm, call);
  const auto sig = signature_of<void, R>(call, r.size(), static_cast<std::uint64_t>(r.first()), s, root);
  return map_over<R>(comm, sig, items_of<T, Fn>{r, fn}, s, opts);
}

template <class Item, class Fn>
auto map_items(const communicator& comm, const char* call, std::vector<Item>& items, Fn& fn, const schedule& s,
               int source, int root, const call_options& opts) {
  using R = std::decay_t<std::invoke_result_t<Fn&, const Item&>>;
  const collective_call entered(comm, call);
  return over_items(comm, call, items, fn, s, source, root, opts, [&](const auto& form, std::int64_t n) {
    return map_over<R>(comm, signature_of<void, R>(call, n, 0, s, root), form, s, opts);
  });
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
/// other ranks' vectors are ignored), in input order on every rank. Each rank receives only the
/// items it computes: under a block or cyclic schedule its share, up front; under guided and
/// dynamic schedules each chunk's items as it takes the chunk, one round trip to rank 0 per chunk
/// (which needs MPI_THREAD_MULTIPLE). Dynamic chunks of fewer than 64 items, and calls with a
/// checkpoint, send every rank every item instead.
template <class Item, std::invocable<const Item&> Fn>
std::vector<std::decay_t<std::invoke_result_t<Fn&, const Item&>>> map(const communicator& comm,
                                                                     std::vector<Item> items, Fn fn,
                                                                     schedule s = {}, const call_options& opts = {}) {
  return detail::map_items(comm, "map", items, fn, s, 0, detail::all_ranks, opts);
}

/// Collective: fn(item) for each item of `items` as given on `root`, the results in input order on
/// `root` only (empty on the other ranks): the shape of a Pool.map call made by one process. The
/// items travel as for map over items: a rank other than `root` holds only its share of the items
/// (its chunks' items, under guided and dynamic schedules) and of the results.
template <class Item, std::invocable<const Item&> Fn>
std::vector<std::decay_t<std::invoke_result_t<Fn&, const Item&>>> map_root(const communicator& comm, int root,
                                                                          std::vector<Item> items, Fn fn,
                                                                          schedule s = {}, const call_options& opts = {}) {
  detail::check_root(comm, root);
  return detail::map_items(comm, "map_root", items, fn, s, root, root, opts);
}

}  // namespace mpiproc
