#pragma once

#include <mpiproc/communicator.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace mpiproc {

/// The type of remaining_ranks.
struct remaining_ranks_t {
  explicit constexpr remaining_ranks_t() = default;
};
/// A role's rank count meaning "every rank the other roles leave".
inline constexpr remaining_ranks_t remaining_ranks{};

/// How many ranks a role takes: a positive number, or remaining_ranks. run_roles throws
/// usage_error on every rank for a number below 1.
class rank_count {
 public:
  // Implicit, so that a role reads {"name", 2, work} or {"name", mpiproc::remaining_ranks, work}.
  constexpr rank_count(int ranks) noexcept : ranks_(ranks) {}             // NOLINT(google-explicit-constructor)
  constexpr rank_count(remaining_ranks_t) noexcept : remaining_(true) {}  // NOLINT(google-explicit-constructor)
  /// Whether the role takes every rank the other roles leave.
  constexpr bool remaining() const noexcept { return remaining_; }
  /// The number asked for (0 when remaining()).
  constexpr int ranks() const noexcept { return ranks_; }

 private:
  int ranks_ = 0;
  bool remaining_ = false;
};

/// One kind of work for a group of ranks, like a multiprocessing.Process target: `work` runs on
/// each of `ranks` ranks and gets the group's own communicator (ranks 0..ranks-1 of the group).
struct role {
  std::string name;
  rank_count ranks = 1;
  std::function<void(const communicator& group)> work;
};

/// Collective over `comm`: gives the roles consecutive ranks in order (role 0 the lowest), runs
/// on each rank its role's work, then joins: returns on every rank once every role is done, or
/// throws remote_error on every rank, naming the rank and message, if work threw anywhere (ranks
/// waiting on shared state, queues or pipes for the failed rank get that error too, not a hang).
/// Ranks no role takes run nothing and wait at the join. Returns the index of this rank's role,
/// or roles.size() for none. Throws usage_error on every rank if a role asks for fewer than 1 rank,
/// if more than one role takes the remaining ranks, or if the roles need more ranks than `comm` has.
std::size_t run_roles(const communicator& comm, const std::vector<role>& roles);

}  // namespace mpiproc
