#pragma once

#include <mpiproc/communicator.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace mpiproc {

/// A role's rank count meaning "every rank the other roles leave".
inline constexpr int remaining_ranks = -1;

/// One kind of work for a group of ranks, like a multiprocessing.Process target: `work` runs on
/// each of `ranks` ranks and gets the group's own communicator (ranks 0..ranks-1 of the group).
struct role {
  std::string name;
  int ranks = 1;
  std::function<void(const communicator& group)> work;
};

/// Collective over `comm`: gives the roles consecutive ranks in order (role 0 the lowest), runs
/// on each rank its role's work, then joins: returns on every rank once every role is done, or
/// throws remote_error on every rank, naming the rank and message, if work threw anywhere (ranks
/// waiting on shared state, queues or pipes for the failed rank get that error too, not a hang).
/// Ranks no role takes run nothing and wait at the join. Returns the index of this rank's role,
/// or roles.size() for none. Throws usage_error if the roles need more ranks than `comm` has.
std::size_t run_roles(const communicator& comm, const std::vector<role>& roles);

}  // namespace mpiproc
