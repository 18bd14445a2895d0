#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/list_store.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mpiproc {

/// A list that every rank of a communicator reads and changes, like a Manager's list. It lives on
/// rank 0, whose service thread answers for it (so a busy rank 0 never holds the others up).
/// Indices below 0 count from the end; an index out of range throws index_error. Every operation
/// is atomic; update() is an atomic read-modify-write of one item with any function.
///
/// Items travel as bytes (trivially copyable types as they are, others through
/// Boost.Serialization). Construction is collective; one thread per rank at a time.
template <class T>
class shared_list {
 public:
  /// Collective over `comm`: the list starts as rank 0's `initial`.
  explicit shared_list(const communicator& comm, const std::vector<T>& initial = {})
      : store_(comm.native(), comm.rank() == 0 ? encode(initial) : std::vector<std::string>()) {}

  void append(const T& item) { store_.append(detail::to_bytes(item)); }
  void extend(const std::vector<T>& items) { store_.extend(encode(items)); }
  /// Inserts before `index` (clamped to the list, as in Python).
  void insert(std::int64_t index, const T& item) { store_.insert(index, detail::to_bytes(item)); }
  T at(std::int64_t index) { return detail::from_bytes<T>(store_.get(index).first); }
  T operator[](std::int64_t index) { return at(index); }
  void set(std::int64_t index, const T& item) { store_.set(index, detail::to_bytes(item)); }
  /// Removes and returns the item at `index` (the last by default).
  T pop(std::int64_t index = -1) { return detail::from_bytes<T>(store_.pop(index)); }

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
  void reverse() { store_.reverse(); }
  void clear() { store_.clear(); }
  /// A copy of the whole list, taken at one moment.
  std::vector<T> snapshot() {
    std::vector<T> out;
    for (const std::string& item : store_.items()) out.push_back(detail::from_bytes<T>(item));
    return out;
  }

 private:
  static std::vector<std::string> encode(const std::vector<T>& items) {
    std::vector<std::string> out;
    out.reserve(items.size());
    for (const T& item : items) out.push_back(detail::to_bytes(item));
    return out;
  }

  detail::list_store store_;
};

}  // namespace mpiproc
