#pragma once

#include <mpiproc/communicator.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mpiproc::detail {

/// The untyped part of a shared dict: keys and values as bytes. Every entry has a version, new on
/// each change and never reused, for compare-and-set updates. Two ways to hold it (see
/// make_dict_store).
class dict_store {
 public:
  struct found {
    std::string value;
    std::uint64_t version = 0;  // 0: no such key
  };

  virtual ~dict_store() = default;

  virtual found get(const std::string& key) = 0;
  virtual void set(const std::string& key, const std::string& value) = 0;
  /// Sets the value if the key's version is still `version` (0: absent); otherwise returns what
  /// is there now.
  virtual std::optional<found> set_if(const std::string& key, std::uint64_t version, const std::string& value) = 0;
  virtual bool erase(const std::string& key) = 0;
  virtual std::uint64_t size() = 0;
  virtual void clear() = 0;
  /// Removes `key` and returns its value, if it was there.
  virtual std::optional<std::string> pop(const std::string& key) = 0;
  /// Removes and returns the last key to come in (see shared_dict::popitem); nothing when empty.
  virtual std::optional<std::pair<std::string, std::string>> popitem() = 0;
  /// Sets `key` to `value` unless it has a value; returns the value it has then.
  virtual std::string setdefault(const std::string& key, const std::string& value) = 0;
  /// Every entry in the dict's order (see shared_dict), each part copied at one moment.
  virtual std::vector<std::pair<std::string, std::string>> entries() = 0;
  /// Only the keys (true) or the values, in the order of entries().
  virtual std::vector<std::string> keys_or_values(bool keys) = 0;
};

/// A key's hash, the same on every rank whatever the standard library (FNV-1a).
inline std::uint64_t key_hash(const std::string& bytes) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

/// Collective over `comm`. On one node, one hash table in memory that every rank maps, changed
/// under per-bucket locks (dict_node: no messages at all). Over several nodes (or with
/// MPIPROC_TRANSPORT=messages), each key kept by the rank its hash picks, in that rank's memory,
/// and served by its service thread, so a busy owner still answers (dict_served).
std::unique_ptr<dict_store> make_dict_store(const communicator& comm);

}  // namespace mpiproc::detail
