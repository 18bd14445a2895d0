#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/breakable.hpp>
#include <mpiproc/error.hpp>

#include <string>

namespace mpiproc::detail {

namespace {
/// The rank whose failure broke a wait, if that is what `failure` is (else -1).
int broken_by(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const peer_failed& e) {
    return e.rank();
  } catch (...) {
    return -1;
  }
}

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

void break_for_failure(MPI_Comm comm, int rank, const std::exception_ptr& failure) noexcept {
  // A rank that saw a broken wait breaks what it holds too: a pipe's other end may wait on it.
  const int failed_before = broken_by(failure);
  break_shared_state(comm, failed_before < 0 ? rank : failed_before);
}

void agree_on_failure(MPI_Comm comm, std::exception_ptr local) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  // Success costs one allreduce (the failure counts); only on failure do the ranks agree on who
  // failed first and share that rank's message. A rank that failed for a reason of its own first
  // breaks the shared state of this communicator, so that ranks waiting for it there get here too;
  // their failures (peer_failed) are named only if no other kind happened.
  const bool own_reason = local && broken_by(local) < 0;
  if (local) break_for_failure(comm, rank, local);
  const int here[2] = {local ? 1 : 0, own_reason ? 1 : 0};
  int counts[2] = {0, 0};
  // Waiting politely: a blocking collective would spin in MPI's progress engine and keep this
  // rank's service thread (which answers other ranks' queue, dict and lock requests) from running.
  MPI_Request pending = MPI_REQUEST_NULL;
  MPIPROC_CHECK(MPI_Iallreduce(here, counts, 2, MPI_INT, MPI_SUM, comm, &pending));
  complete_by(pending, std::nullopt);
  if (counts[0] == 0) return;
  const bool by_own_reason = counts[1] > 0;
  const int failed_ranks = by_own_reason ? counts[1] : counts[0];
  const int candidate = (by_own_reason ? own_reason : local != nullptr) ? rank : size;
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
