#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/roles.hpp>

#include <exception>
#include <string>

namespace mpiproc {

namespace {
/// Each role's first rank and rank count (the remaining ranks resolved); throws usage_error.
std::vector<std::pair<int, int>> assign(const std::vector<role>& roles, int size) {
  int fixed = 0, open = 0;
  for (const role& r : roles) {
    if (r.ranks.remaining())
      ++open;
    else if (r.ranks.ranks() < 1)
      throw usage_error("mpiproc::run_roles: role '" + r.name + "' asks for " + std::to_string(r.ranks.ranks()) +
                        " ranks; give it at least 1, or mpiproc::remaining_ranks for the ranks the others leave");
    else
      fixed += r.ranks.ranks();
  }
  if (open > 1) throw usage_error("mpiproc::run_roles: only one role may take the remaining ranks");
  if (fixed > size)
    throw usage_error("mpiproc::run_roles: the roles need " + std::to_string(fixed) + " ranks, but there are " +
                      std::to_string(size) + "; run with more ranks (mpirun -np " + std::to_string(fixed) + ")");
  std::vector<std::pair<int, int>> places;
  int next = 0;
  for (const role& r : roles) {
    const int count = r.ranks.remaining() ? size - fixed : r.ranks.ranks();
    places.emplace_back(next, count);
    next += count;
  }
  return places;
}
}  // namespace

std::size_t run_roles(const communicator& comm, const std::vector<role>& roles) {
  // A collective call on `comm` from inside a role would hang (only the role's ranks make it).
  const detail::collective_call entered(comm.native(), "run_roles");
  return detail::run_roles_within_call(comm, roles);
}

std::size_t detail::run_roles_within_call(const communicator& comm, const std::vector<role>& roles) {
  const auto places = assign(roles, comm.size());
  std::size_t mine = roles.size();
  for (std::size_t i = 0; i < roles.size(); ++i)
    if (comm.rank() >= places[i].first && comm.rank() < places[i].first + places[i].second) mine = i;
  MPI_Comm split = MPI_COMM_NULL;
  MPIPROC_CHECK(MPI_Comm_split(comm.native(), mine == roles.size() ? MPI_UNDEFINED : static_cast<int>(mine),
                               comm.rank(), &split));
  std::exception_ptr failure;
  if (split != MPI_COMM_NULL) {
    try {
      const communicator group(split);
      MPI_Comm_free(&split);
      try {
        if (roles[mine].work) roles[mine].work(group);
      } catch (...) {
        failure = std::current_exception();
        // Ranks of this group waiting on its own shared state for this one end too; the join
        // below breaks what was made on `comm`.
        detail::break_for_failure(group.native(), comm.rank(), failure);
      }
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
    if (split != MPI_COMM_NULL) MPI_Comm_free(&split);
  }
  detail::agree_on_failure(comm.native(), failure);
  return mine;
}

}  // namespace mpiproc
