#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/shared_segment.hpp>

#include <cstdint>
#include <memory>

namespace mpiproc {

/// An atomic 64-bit integer shared by the ranks of a communicator, held on rank 0. Every
/// operation is one atomic step: no lock needed for a shared tally or a ticket dispenser.
class counter {
 public:
  /// Collective over `comm`.
  explicit counter(const communicator& comm, std::int64_t initial = 0);

  /// Adds `delta` (wrapping like unsigned arithmetic); returns the value before.
  std::int64_t fetch_add(std::int64_t delta = 1);
  std::int64_t fetch_sub(std::int64_t delta = 1) { return fetch_add(static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(delta))); }
  std::int64_t load();
  void store(std::int64_t value);
  /// Stores `value`; returns the value before.
  std::int64_t exchange(std::int64_t value);
  /// If the counter holds `expected`, stores `desired` and returns true; otherwise loads the
  /// current value into `expected` and returns false.
  bool compare_exchange(std::int64_t& expected, std::int64_t desired);

 private:
  std::unique_ptr<detail::shared_segment> word_;
};

}  // namespace mpiproc
