#pragma once

#include <mpiproc/detail/dict_store.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace mpiproc::detail {

/// A shared dict on one node: one hash table in memory that every rank maps, so an operation is a
/// lock, a few loads and a copy, with no message. Each bucket has a lock of its own; the entries
/// keep one insertion order for the whole dict (Python's), under a lock taken only when a key comes
/// or goes. Keys, values and entries live in blocks of powers of two taken from the reserved range
/// and reused once freed; the range is the node's memory, whose pages come as they are touched.
class dict_node final : public dict_store {
 public:
  /// `memory`: rank 0 reserved the range (mapped_word(0, 0) is not null on every rank).
  explicit dict_node(std::unique_ptr<shared_segment> memory);

  found get(const std::string& key) override;
  void set(const std::string& key, const std::string& value) override;
  std::optional<found> set_if(const std::string& key, std::uint64_t version, const std::string& value) override;
  bool erase(const std::string& key) override;
  std::uint64_t size() override;
  void clear() override;
  std::optional<std::string> pop(const std::string& key) override;
  /// The last key to come in, of the whole dict.
  std::optional<std::pair<std::string, std::string>> popitem() override;
  std::string setdefault(const std::string& key, const std::string& value) override;
  std::vector<std::pair<std::string, std::string>> entries() override;
  std::vector<std::string> keys_or_values(bool keys) override;

  /// How much a dict reserves: the node's memory.
  static std::size_t reserved_bytes();

  struct header;
  struct bucket;
  struct entry;
  class locked;
  class all_locked;

 private:
  void check_usable() const;
  header& head() const;
  bucket& bucket_of(std::uint64_t hash) const;
  entry& entry_at(std::uint64_t offset) const;
  char* bytes_at(std::uint64_t offset) const;
  std::uint64_t find(const bucket& b, std::uint64_t hash, const std::string& key) const;
  std::string value_of(const entry& e) const;
  std::string key_of(const entry& e) const;
  std::uint64_t next_version(const entry& e);
  void put_value(entry& e, const std::string& value);
  std::uint64_t insert(bucket& b, std::uint64_t hash, const std::string& key, const std::string& value);
  /// Takes the entry out of its chain and of the order (the caller holds both their locks).
  void unlink(bucket& b, std::uint64_t at);
  /// Frees an unlinked entry's blocks.
  void free_entry(std::uint64_t at);
  void remove(bucket& b, std::uint64_t at);

  std::uint64_t allocate(unsigned size_class);
  void release(std::uint64_t at, unsigned size_class);
  void lock(std::uint32_t& word);
  static void unlock(std::uint32_t& word);

  std::unique_ptr<shared_segment> memory_;
  std::byte* base_;       // rank 0's memory, as mapped here
  std::size_t capacity_;  // its bytes
};

}  // namespace mpiproc::detail
