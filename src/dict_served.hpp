#pragma once

#include <mpiproc/detail/dict_store.hpp>

#include <memory>

namespace mpiproc::detail {

class service_endpoint;

/// A shared dict over several nodes: each key kept by the rank its hash picks, in that rank's
/// memory, served by its service thread (so a busy owner still answers); one round trip per
/// operation. Each owner keeps its keys in the order they came in, as a Python dict does, and the
/// dict's order goes owner by owner from rank 0.
class dict_served final : public dict_store {
 public:
  /// Collective over `comm`.
  explicit dict_served(const communicator& comm);
  ~dict_served() override;

  found get(const std::string& key) override;
  void set(const std::string& key, const std::string& value) override;
  std::optional<found> set_if(const std::string& key, std::uint64_t version, const std::string& value) override;
  bool erase(const std::string& key) override;
  std::uint64_t size() override;
  void clear() override;
  std::optional<std::string> pop(const std::string& key) override;
  /// From the first owner that has a key: the calling rank, then the next ranks (wrapping around).
  std::optional<std::pair<std::string, std::string>> popitem() override;
  std::string setdefault(const std::string& key, const std::string& value) override;
  std::vector<std::pair<std::string, std::string>> entries() override;
  std::vector<std::string> keys_or_values(bool keys) override;

 private:
  int owner(const std::string& key) const;
  std::string ask(int rank, const std::string& request);

  std::unique_ptr<service_endpoint> endpoint_;
};

}  // namespace mpiproc::detail
