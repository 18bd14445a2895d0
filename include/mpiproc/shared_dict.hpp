#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/dict_store.hpp>

#include <cstdint>
#include <map>
#include <optional>

namespace mpiproc {

/// A dictionary that every rank of a communicator reads and changes, like a Manager's dict. Each
/// key lives on the rank its hash picks, so the dict grows past one rank's memory; that rank's
/// service thread answers for it, so a rank busy in user code never holds the others up. Every
/// operation is atomic on its key; update() is an atomic read-modify-write with any function.
///
/// Keys and values travel as bytes (trivially copyable types as they are, others through
/// Boost.Serialization: include the boost/serialization header for a standard container). Keys
/// compare by those bytes. Construction is collective; one thread per rank at a time.
template <class K, class V>
class shared_dict {
 public:
  /// Collective over `comm`: an empty dict.
  explicit shared_dict(const communicator& comm) : store_(comm.native()) {}

  /// The value for `key`, if there is one.
  std::optional<V> get(const K& key) {
    auto found = store_.get(detail::to_bytes(key));
    if (!found.version) return std::nullopt;
    return detail::from_bytes<V>(found.value);
  }
  /// The value for `key`; throws key_error if there is none.
  V at(const K& key) {
    if (auto value = get(key)) return *std::move(value);
    throw key_error("mpiproc::shared_dict: no such key");
  }
  bool contains(const K& key) { return store_.get(detail::to_bytes(key)).version != 0; }
  void set(const K& key, const V& value) { store_.set(detail::to_bytes(key), detail::to_bytes(value)); }
  /// Removes `key`; whether it was there.
  bool erase(const K& key) { return store_.erase(detail::to_bytes(key)); }

  /// Atomically replaces the value for `key` with `change(current)` (current: empty if absent)
  /// and returns it: no other rank's change to that key comes between. `change` may run more
  /// than once (when another rank changed the key meanwhile), so it must not have side effects.
  template <class F>
  V update(const K& key, F change) {
    const std::string k = detail::to_bytes(key);
    detail::dict_store::found now = store_.get(k);
    for (;;) {
      std::optional<V> current;
      if (now.version) current = detail::from_bytes<V>(now.value);
      V next = change(std::move(current));
      auto conflict = store_.set_if(k, now.version, detail::to_bytes(next));
      if (!conflict) return next;
      now = std::move(*conflict);
    }
  }

  /// The number of keys, summed over the owners (stale while others change the dict).
  std::uint64_t size() { return store_.size(); }
  void clear() { store_.clear(); }
  /// A copy of every entry; each owner's keys are copied at one moment.
  std::map<K, V> snapshot() {
    std::map<K, V> out;
    for (const auto& [key, value] : store_.entries())
      out.emplace(detail::from_bytes<K>(key), detail::from_bytes<V>(value));
    return out;
  }

 private:
  detail::dict_store store_;
};

}  // namespace mpiproc
