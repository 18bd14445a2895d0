#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/error.hpp>

#include <string>

namespace mpiproc::detail {

namespace {
std::string message_of(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const remote_error& e) {
    return e.message();  // a nested collective already named the original error
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}
}  // namespace

void agree_on_failure(MPI_Comm comm, std::exception_ptr local) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  // Success costs one allreduce (the failure count); only on failure do the ranks agree on who
  // failed first and share that rank's message.
  const int failed_here = local ? 1 : 0;
  int failed_ranks = 0;
  MPIPROC_CHECK(MPI_Allreduce(&failed_here, &failed_ranks, 1, MPI_INT, MPI_SUM, comm));
  if (failed_ranks == 0) return;
  const int candidate = local ? rank : size;
  int failed_rank = size;
  MPIPROC_CHECK(MPI_Allreduce(&candidate, &failed_rank, 1, MPI_INT, MPI_MIN, comm));
  std::string message = rank == failed_rank ? message_of(local) : std::string();
  unsigned long length = message.size();
  MPIPROC_CHECK(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG, failed_rank, comm));
  message.resize(length);
  MPIPROC_CHECK(MPI_Bcast(message.data(), static_cast<int>(length), MPI_CHAR, failed_rank, comm));
  throw remote_error(failed_rank, std::move(message), failed_ranks);
}

}  // namespace mpiproc::detail
