#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>

#include <cstddef>
#include <cstdint>
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

/// A role whose work returns a value, like a Process target whose return value the parent wants
/// (which multiprocessing.Process drops): run_roles returns each role's value on every rank, the
/// value its work returned on the group's rank 0 (the other ranks' values are not used). R is any
/// type mpiproc sends (trivially copyable, or serializable; see README, Types) with a default
/// constructor.
template <class R>
struct returning_role {
  std::string name;
  rank_count ranks = 1;
  std::function<R(const communicator& group)> work;
};

namespace detail {
/// run_roles without its collective_call (the caller holds one).
std::size_t run_roles_within_call(const communicator& comm, const std::vector<role>& roles);
}  // namespace detail

/// Collective over `comm`: gives the roles consecutive ranks in order (role 0 the lowest), runs
/// on each rank its role's work, then joins: returns on every rank once every role is done, or
/// throws remote_error on every rank, naming the rank and message, if work threw anywhere (ranks
/// waiting on shared state, queues or pipes for the failed rank get that error too, not a hang).
/// Ranks no role takes run nothing and wait at the join. Returns the index of this rank's role,
/// or roles.size() for none. Throws usage_error on every rank if a role asks for fewer than 1 rank,
/// if more than one role takes the remaining ranks, or if the roles need more ranks than `comm` has.
std::size_t run_roles(const communicator& comm, const std::vector<role>& roles);

/// Collective over `comm`: run_roles for roles that return values, which it returns on every rank
/// in the order of `roles` (the join, like Process.join, plus the value the target returned).
/// The same errors as run_roles: if work threw anywhere, every rank throws remote_error.
template <class R>
std::vector<R> run_roles(const communicator& comm, const std::vector<returning_role<R>>& roles) {
  int fixed = 0;
  for (const returning_role<R>& r : roles) {
    if (!r.work) throw usage_error("mpiproc::run_roles: role '" + r.name + "' returns a value but has no work");
    fixed += r.ranks.remaining() ? 0 : r.ranks.ranks();
  }
  for (const returning_role<R>& r : roles)
    if (r.ranks.remaining() && fixed == comm.size())
      throw usage_error("mpiproc::run_roles: role '" + r.name + "' takes the remaining ranks, but the other roles take all " +
                        std::to_string(comm.size()) + ", so it would return no value; run with more ranks");
  const detail::collective_call entered(comm.native(), "run_roles");
  std::vector<R> mine;  // this rank's role's value, where it is its group's rank 0
  std::vector<role> plain;
  plain.reserve(roles.size());
  for (const returning_role<R>& r : roles)
    plain.push_back({r.name, r.ranks, [&mine, &work = r.work](const communicator& group) {
                       R value = work(group);
                       if (group.rank() == 0) mine.push_back(std::move(value));
                     }});
  detail::run_roles_within_call(comm, plain);
  // Each role's rank 0 holds one value; roles take consecutive ranks in order, so the values
  // gathered in rank order are in role order.
  std::vector<std::int64_t> counts;
  return detail::gather_concat(comm.native(), std::move(mine), detail::all_ranks, counts);
}

}  // namespace mpiproc
