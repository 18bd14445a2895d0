#pragma once

#include <mpiproc/communicator.hpp>

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mpiproc::detail {

class service_endpoint;

/// The untyped part of a shared dict: keys and values as bytes, each key kept by the rank its hash
/// picks, in that rank's memory, served by its service thread (so a busy owner still answers).
/// Every entry has a version, new on each change, for compare-and-set updates. Each owner keeps its
/// keys in the order they came in, as a Python dict does.
class dict_store {
 public:
  struct found {
    std::string value;
    std::uint64_t version = 0;  // 0: no such key
  };

  /// Collective over `comm`.
  explicit dict_store(const communicator& comm);
  ~dict_store();
  dict_store(dict_store&&) noexcept;
  dict_store& operator=(dict_store&&) noexcept;

  found get(const std::string& key);
  void set(const std::string& key, const std::string& value);
  /// Sets the value if the key's version is still `version` (0: absent); otherwise returns what
  /// is there now.
  std::optional<found> set_if(const std::string& key, std::uint64_t version, const std::string& value);
  bool erase(const std::string& key);
  std::uint64_t size();
  void clear();
  /// Removes `key` and returns its value, if it was there.
  std::optional<std::string> pop(const std::string& key);
  /// Removes and returns the last key to come in, from the first owner that has one: the calling
  /// rank, then the next ranks (wrapping around). Nothing when each owner was empty when asked.
  std::optional<std::pair<std::string, std::string>> popitem();
  /// Sets `key` to `value` unless it has a value; returns the value it has then.
  std::string setdefault(const std::string& key, const std::string& value);
  /// Every entry, owner by owner (rank 0 first), each in the order its keys came in and copied at
  /// one moment.
  std::vector<std::pair<std::string, std::string>> entries();
  /// Only the keys (true) or the values, in the order of entries().
  std::vector<std::string> keys_or_values(bool keys);

 private:
  int owner(const std::string& key) const;
  std::string ask(int rank, const std::string& request);

  service_endpoint& endpoint() const;

  std::unique_ptr<service_endpoint> endpoint_;  // held by pointer: the store moves, the endpoint stays put
};

}  // namespace mpiproc::detail
