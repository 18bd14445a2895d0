#pragma once

#include <mpiproc/communicator.hpp>

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace mpiproc::detail {

class service_endpoint;

/// What the owner of a list needs to know of the item type to compare items as the type does
/// (T's == and <, not their bytes: 0.0 == -0.0, and a serialized item's bytes may differ for equal
/// values). Given as bytes; empty where T has no such operator.
struct item_order {
  /// A test for items equal to `needle`.
  std::function<std::function<bool(const std::string&)>(const std::string& needle)> equal_to;
  /// Sorts items stably by T's < (with each comparison reversed when `reverse`, as Python does).
  std::function<void(std::vector<std::string>& items, bool reverse)> sort;
};

/// A Python slice's bounds: an absent start or stop is the end the step walks from or to.
struct slice_bounds {
  static constexpr std::int64_t none_low = std::numeric_limits<std::int64_t>::min();
  static constexpr std::int64_t none_high = std::numeric_limits<std::int64_t>::max();
  std::int64_t start = 0, stop = none_high, step = 1;

  /// Python's meaning of start:stop:step, checked (value_error for a step of 0).
  static slice_bounds of(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::int64_t step);
};

/// The untyped part of a shared list: items as bytes in rank 0's memory, served by its service
/// thread. Indices below 0 count from the end, as in Python; one out of range answers
/// index_error. A version, new on each change, allows compare-and-set updates. Every operation
/// is one request, so atomic.
class list_store {
 public:
  /// Collective over `comm`; rank 0's `initial` items are the list's, compared with `order`.
  list_store(const communicator& comm, const std::vector<std::string>& initial, item_order order = {});
  ~list_store();
  list_store(list_store&&) noexcept;
  list_store& operator=(list_store&&) noexcept;

  void append(const std::string& item);
  void extend(const std::vector<std::string>& items);
  void insert(std::int64_t index, const std::string& item);
  /// The item and the list's version.
  std::pair<std::string, std::uint64_t> get(std::int64_t index);
  void set(std::int64_t index, const std::string& item);
  /// Sets the item if the list's version is still `version`; false otherwise.
  bool set_if(std::int64_t index, std::uint64_t version, const std::string& item);
  std::string pop(std::int64_t index);
  std::uint64_t size();
  void reverse();
  void clear();
  std::vector<std::string> items();
  /// The items and the list's version.
  std::pair<std::vector<std::string>, std::uint64_t> versioned_items();
  /// Replaces every item if the list's version is still `version`; false otherwise.
  bool replace_if(std::uint64_t version, const std::vector<std::string>& items);

  /// The first index in [start, stop) (clamped as Python's list.index does) of an item equal to
  /// `item`; value_error if there is none.
  std::uint64_t index(const std::string& item, std::int64_t start, std::int64_t stop);
  std::uint64_t count(const std::string& item);
  bool contains(const std::string& item);
  /// Removes the first item equal to `item`; value_error if there is none.
  void remove(const std::string& item);
  void sort(bool reverse);
  /// Python's list *= times (0 or less empties the list).
  void repeat(std::int64_t times);

  std::vector<std::string> slice(const slice_bounds& s);
  /// Python's list[s] = items: any length for a step of 1, else exactly the slice's (value_error).
  void set_slice(const slice_bounds& s, const std::vector<std::string>& items);
  void erase_slice(const slice_bounds& s);

 private:
  std::string ask(const std::string& request);

  service_endpoint& endpoint() const;

  std::unique_ptr<service_endpoint> endpoint_;  // held by pointer: the store moves, the endpoint stays put
};

}  // namespace mpiproc::detail
