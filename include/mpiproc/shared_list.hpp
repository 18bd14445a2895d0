#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/list_store.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mpiproc {

/// A list that every rank of a communicator reads and changes, like a Manager's list. It lives on
/// rank 0, whose service thread answers for it (so a busy rank 0 never holds the others up).
/// Indices below 0 count from the end; an index out of range throws index_error. Every operation
/// is atomic (one request to rank 0, which does all of it before the next); update() is an atomic
/// read-modify-write of one item with any function.
///
/// Items travel as bytes (trivially copyable types as they are, others through
/// Boost.Serialization) and compare with T's own == and < (on rank 0). Construction is
/// collective; one thread per rank at a time. Movable, not copyable; a moved-from list is a
/// usage_error to use.
template <class T>
class shared_list {
 public:
  class iterator;

  /// Collective over `comm`: the list starts as rank 0's `initial`.
  explicit shared_list(const communicator& comm, const std::vector<T>& initial = {})
      : store_(comm, comm.rank() == 0 ? encode(initial) : std::vector<std::string>(), order()) {}

  void append(const T& item) { store_.append(detail::to_bytes(item)); }
  void extend(const std::vector<T>& items) { store_.extend(encode(items)); }
  /// Inserts before `index` (clamped to the list, as in Python).
  void insert(std::int64_t index, const T& item) { store_.insert(index, detail::to_bytes(item)); }
  T at(std::int64_t index) { return detail::from_bytes<T>(store_.get(index).first); }
  T operator[](std::int64_t index) { return at(index); }
  void set(std::int64_t index, const T& item) { store_.set(index, detail::to_bytes(item)); }
  /// Removes and returns the item at `index` (the last by default); index_error if out of range
  /// or the list is empty.
  T pop(std::int64_t index = -1) { return detail::from_bytes<T>(store_.pop(index)); }

  /// Removes the first item equal to `item`; value_error if there is none (Python's ValueError).
  void remove(const T& item)
    requires std::equality_comparable<T>
  {
    store_.remove(detail::to_bytes(item));
  }
  /// The index of the first item equal to `item` in [start, stop) (below 0: from the end; then
  /// clamped to the list, as Python's list.index); value_error if there is none there.
  std::uint64_t index(const T& item, std::int64_t start = 0,
                      std::int64_t stop = std::numeric_limits<std::int64_t>::max())
    requires std::equality_comparable<T>
  {
    return store_.index(detail::to_bytes(item), start, stop);
  }
  /// How many items equal `item`.
  std::uint64_t count(const T& item)
    requires std::equality_comparable<T>
  {
    return store_.count(detail::to_bytes(item));
  }
  /// Whether an item equals `item` (Python's `item in list`).
  bool contains(const T& item)
    requires std::equality_comparable<T>
  {
    return store_.contains(detail::to_bytes(item));
  }

  /// Sorts the list stably by T's <, on rank 0 in one request; with `reverse`, each comparison is
  /// reversed (equal items keep their order), as Python's sort(reverse=True). If < throws, the
  /// list is left as it was.
  void sort(bool reverse = false)
    requires std::totally_ordered<T>
  {
    store_.sort(reverse);
  }
  /// Sorts the list stably by `less(a, b)`, or, given a one-argument `key`, by key(item)'s <
  /// (Python's sort(key=...)); `reverse` as above. Runs here: it reads the list, sorts it and
  /// writes it back if no rank changed it meanwhile (else again, so `by` must have no side
  /// effects). Atomic: no other change comes between the read and the write.
  template <class By>
    requires std::predicate<By&, const T&, const T&> || std::invocable<By&, const T&>
  void sort(By by, bool reverse = false) {
    for (;;) {
      auto [bytes, version] = store_.versioned_items();
      std::vector<T> items = decode(bytes);
      std::vector<std::size_t> order(items.size());
      std::iota(order.begin(), order.end(), std::size_t{0});
      if constexpr (std::predicate<By&, const T&, const T&>) {
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          return reverse ? std::invoke(by, items[b], items[a]) : std::invoke(by, items[a], items[b]);
        });
      } else {
        std::vector<std::decay_t<std::invoke_result_t<By&, const T&>>> keys;
        keys.reserve(items.size());
        for (const T& item : items) keys.push_back(std::invoke(by, item));
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return reverse ? keys[b] < keys[a] : keys[a] < keys[b]; });
      }
      std::vector<std::string> sorted;
      sorted.reserve(bytes.size());
      for (std::size_t i : order) sorted.push_back(std::move(bytes[i]));
      if (store_.replace_if(version, sorted)) return;
    }
  }

  /// The items list[start:stop:step], as Python slices: an absent start or stop (std::nullopt) is
  /// the end the step walks from or to, bounds below 0 count from the end, and bounds out of range
  /// are clamped (never index_error). A step of 0 is a value_error.
  std::vector<T> slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::int64_t step = 1) {
    return decode(store_.slice(detail::slice_bounds::of(start, stop, step)));
  }
  /// Python's list[start:stop] = items: the slice's items give way to `items`, whatever their
  /// number.
  void set_slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, const std::vector<T>& items) {
    set_slice(start, stop, 1, items);
  }
  /// Python's list[start:stop:step] = items: with a step other than 1, `items` must be exactly as
  /// many as the slice has (value_error otherwise, and the list stays as it was).
  void set_slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::int64_t step,
                 const std::vector<T>& items) {
    store_.set_slice(detail::slice_bounds::of(start, stop, step), encode(items));
  }
  /// Python's del list[start:stop:step].
  void erase_slice(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::int64_t step = 1) {
    store_.erase_slice(detail::slice_bounds::of(start, stop, step));
  }

  /// Atomically replaces the item at `index` with `change(item)` and returns it. `change` may
  /// run more than once (when another rank changed the list meanwhile): no side effects.
  template <class F>
  T update(std::int64_t index, F change) {
    for (;;) {
      auto [bytes, version] = store_.get(index);
      T next = change(detail::from_bytes<T>(bytes));
      if (store_.set_if(index, version, detail::to_bytes(next))) return next;
    }
  }

  std::uint64_t size() { return store_.size(); }
  /// Python's list *= times: the items `times` times over, atomically (0 or less empties the
  /// list); usage_error, and no change, if that would be more than 2^40 items.
  void repeat(std::int64_t times) { store_.repeat(times); }
  void reverse() { store_.reverse(); }
  void clear() { store_.clear(); }
  /// A copy of the whole list, taken at one moment.
  std::vector<T> snapshot() { return decode(store_.items()); }

  /// `for (T item : list)` walks a snapshot taken by begin(): changes made while it walks are not
  /// seen (where Python's iteration over a proxy also copies the list first).
  iterator begin() { return iterator(std::make_shared<const std::vector<T>>(snapshot())); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// An input iterator over a snapshot; it holds the snapshot, so it outlives the list.
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    const T& operator*() const { return (*items_)[at_]; }
    const T* operator->() const { return &(*items_)[at_]; }
    iterator& operator++() {
      ++at_;
      return *this;
    }
    void operator++(int) { ++at_; }
    friend bool operator==(const iterator& i, std::default_sentinel_t) { return !i.items_ || i.at_ == i.items_->size(); }

   private:
    friend class shared_list;
    explicit iterator(std::shared_ptr<const std::vector<T>> items) : items_(std::move(items)) {}
    std::shared_ptr<const std::vector<T>> items_;
    std::size_t at_ = 0;
  };

 private:
  static std::vector<T> decode(const std::vector<std::string>& bytes) {
    std::vector<T> out;
    out.reserve(bytes.size());
    for (const std::string& item : bytes) out.push_back(detail::from_bytes<T>(item));
    return out;
  }

  /// How rank 0 compares items: as T does, where T can.
  static detail::item_order order() {
    detail::item_order o;
    if constexpr (std::equality_comparable<T>)
      o.equal_to = [](const std::string& needle) {
        return [value = detail::from_bytes<T>(needle)](const std::string& item) {
          return detail::from_bytes<T>(item) == value;
        };
      };
    if constexpr (std::totally_ordered<T>)
      o.sort = [](std::vector<std::string>& items, bool reverse) {
        const std::vector<T> values = decode(items);
        std::vector<std::size_t> order(items.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          return reverse ? values[b] < values[a] : values[a] < values[b];
        });
        std::vector<std::string> sorted;
        sorted.reserve(items.size());
        for (std::size_t i : order) sorted.push_back(std::move(items[i]));
        items = std::move(sorted);
      };
    return o;
  }


  static std::vector<std::string> encode(const std::vector<T>& items) {
    std::vector<std::string> out;
    out.reserve(items.size());
    for (const T& item : items) out.push_back(detail::to_bytes(item));
    return out;
  }

  detail::list_store store_;
};

}  // namespace mpiproc
