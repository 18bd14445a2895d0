#pragma once

#include <mpiproc/detail/shared_segment.hpp>

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mpiproc::detail {

/// The untyped part of a shared list: items as bytes in rank 0's memory, served by its service
/// thread. Indices below 0 count from the end, as in Python; one out of range answers
/// index_error. A version, new on each change, allows compare-and-set updates.
class list_store {
 public:
  /// Collective over `comm`; rank 0's `initial` items are the list's.
  list_store(MPI_Comm comm, const std::vector<std::string>& initial);

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

 private:
  std::string ask(const std::string& request);

  shared_segment segment_;
};

}  // namespace mpiproc::detail
