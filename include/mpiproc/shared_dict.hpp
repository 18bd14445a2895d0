#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/dict_store.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace mpiproc {

/// A dictionary that every rank of a communicator reads and changes, like a Manager's dict. Every
/// operation is atomic on its key; update() is an atomic read-modify-write with any function.
/// - On one node the dict is one hash table in memory that every rank maps, with a lock per bucket:
///   an operation is a few hundred nanoseconds and sends no message. It holds up to the node's
///   memory (error once that is used up).
/// - Over several nodes each key lives on the rank its hash picks, so the dict grows past one
///   rank's memory; that rank's service thread answers for it, so a rank busy in user code never
///   holds the others up.
///
/// Keys and values travel as bytes (trivially copyable types as they are, others through
/// Boost.Serialization: include the boost/serialization header for a standard container). Keys
/// compare by those bytes. Construction is collective; one thread per rank at a time. Movable, not
/// copyable; a moved-from dict is a usage_error to use.
///
/// Order: keys(), values(), items() and iteration give the keys in the order they came in (a key
/// set again keeps its place; erased and set again, it goes last), Python's insertion order. Over
/// several nodes that holds for each owner's keys, and the owners go one after another from rank
/// 0, so keys that different ranks own are not ordered by time.
template <class K, class V>
class shared_dict {
 public:
  class iterator;

  /// Collective over `comm`: an empty dict.
  explicit shared_dict(const communicator& comm) : store_(detail::make_dict_store(comm)) {}

  /// The value for `key`, if there is one.
  std::optional<V> get(const K& key) {
    auto found = store().get(detail::to_bytes(key));
    if (!found.version) return std::nullopt;
    return detail::from_bytes<V>(found.value);
  }
  /// The value for `key`; throws key_error if there is none.
  V at(const K& key) {
    if (auto value = get(key)) return *std::move(value);
    throw key_error("mpiproc::shared_dict: no such key");
  }
  /// The value for `key`, or `fallback` if there is none (Python's get(key, default)).
  V get(const K& key, const V& fallback) {
    if (auto value = get(key)) return *std::move(value);
    return fallback;
  }
  bool contains(const K& key) { return store().get(detail::to_bytes(key)).version != 0; }
  void set(const K& key, const V& value) { store().set(detail::to_bytes(key), detail::to_bytes(value)); }
  /// Removes `key`; whether it was there.
  bool erase(const K& key) { return store().erase(detail::to_bytes(key)); }

  /// Removes `key` and returns its value, atomically (of ranks popping one key at once, one gets
  /// it); key_error if there is none.
  V pop(const K& key) {
    if (auto value = store().pop(detail::to_bytes(key))) return detail::from_bytes<V>(*value);
    throw key_error("mpiproc::shared_dict: pop(key): no such key");
  }
  /// Removes `key` and returns its value, or returns `fallback` if there is none.
  V pop(const K& key, const V& fallback) {
    if (auto value = store().pop(detail::to_bytes(key))) return detail::from_bytes<V>(*value);
    return fallback;
  }
  /// Removes and returns an entry, atomically: the last key to come in (Python's LIFO order). Over
  /// several nodes: the last of those that the first owner with any keeps, asking the calling
  /// rank's part first, then the next ranks'. key_error if the dict was empty when asked.
  std::pair<K, V> popitem() {
    auto entry = store().popitem();
    if (!entry) throw key_error("mpiproc::shared_dict: popitem(): dictionary is empty");
    return {detail::from_bytes<K>(entry->first), detail::from_bytes<V>(entry->second)};
  }
  /// Sets `key` to `value` if it has no value, and returns the value it has then, atomically: of
  /// ranks calling this at once for a missing key, exactly one sets it and all get its value.
  V setdefault(const K& key, const V& value) {
    return detail::from_bytes<V>(store().setdefault(detail::to_bytes(key), detail::to_bytes(value)));
  }

  /// Atomically replaces the value for `key` with `change(current)` (current: empty if absent)
  /// and returns it: no other rank's change to that key comes between. `change` may run more
  /// than once (when another rank changed the key meanwhile), so it must not have side effects.
  template <class F>
  V update(const K& key, F change) {
    const std::string k = detail::to_bytes(key);
    detail::dict_store::found now = store().get(k);
    for (;;) {
      std::optional<V> current;
      if (now.version) current = detail::from_bytes<V>(now.value);
      V next = change(std::move(current));
      auto conflict = store().set_if(k, now.version, detail::to_bytes(next));
      if (!conflict) return next;
      now = std::move(*conflict);
    }
  }

  /// The number of keys (stale while others change the dict).
  std::uint64_t size() { return store().size(); }
  void clear() { store().clear(); }
  /// A copy of every entry, sorted by key, copied at one moment (over several nodes: each owner's part).
  std::map<K, V> snapshot() {
    std::map<K, V> out;
    for (const auto& [key, value] : store().entries())
      out.emplace(detail::from_bytes<K>(key), detail::from_bytes<V>(value));
    return out;
  }
  /// Copies of the keys, the values and the entries, in the dict's order (see above), copied at one
  /// moment (over several nodes: each owner's part).
  std::vector<K> keys() { return decode<K>(store().keys_or_values(true)); }
  std::vector<V> values() { return decode<V>(store().keys_or_values(false)); }
  std::vector<std::pair<K, V>> items() {
    std::vector<std::pair<K, V>> out;
    for (const auto& [key, value] : store().entries())
      out.emplace_back(detail::from_bytes<K>(key), detail::from_bytes<V>(value));
    return out;
  }

  /// `for (const auto& [key, value] : dict)` walks the entries of items(), taken by begin() (as
  /// std::map gives pairs; Python's `for key in dict` is `for (K key : dict.keys())`).
  iterator begin() { return iterator(std::make_shared<const std::vector<std::pair<K, V>>>(items())); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// An input iterator over a snapshot; it holds the snapshot, so it outlives the dict.
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = std::pair<K, V>;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    const value_type& operator*() const { return (*entries_)[at_]; }
    const value_type* operator->() const { return &(*entries_)[at_]; }
    iterator& operator++() {
      ++at_;
      return *this;
    }
    void operator++(int) { ++at_; }
    friend bool operator==(const iterator& i, std::default_sentinel_t) {
      return !i.entries_ || i.at_ == i.entries_->size();
    }

   private:
    friend class shared_dict;
    explicit iterator(std::shared_ptr<const std::vector<value_type>> entries) : entries_(std::move(entries)) {}
    std::shared_ptr<const std::vector<value_type>> entries_;
    std::size_t at_ = 0;
  };

 private:
  template <class T>
  static std::vector<T> decode(const std::vector<std::string>& bytes) {
    std::vector<T> out;
    out.reserve(bytes.size());
    for (const std::string& b : bytes) out.push_back(detail::from_bytes<T>(b));
    return out;
  }

  detail::dict_store& store() const {
    if (!store_) throw usage_error("mpiproc::shared_dict: used after it was moved from");
    return *store_;
  }

  std::unique_ptr<detail::dict_store> store_;
};

}  // namespace mpiproc
