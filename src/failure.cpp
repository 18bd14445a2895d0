#include "registry.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/error.hpp>

#include <string>
#include <vector>

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

/// How every rank rethrows a failure: as remote_error, or as the failed rank's own kind where that
/// kind means the same on every rank (misuse; an interruption by a signal).
enum failure_kind : unsigned long { remote = 0, misuse = 1, interruption = 2 };

failure_kind kind_of(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const usage_error&) {
    return misuse;
  } catch (const interrupted&) {
    return interruption;
  } catch (...) {
    return remote;
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

namespace {
/// Ranks made different calls: every rank throws usage_error naming rank 0's call and the first
/// rank's that differs.
[[noreturn]] void report_disagreement(MPI_Comm comm, int rank, int size, const call_signature& mine) {
  const std::uint64_t hash = mine.hash();
  std::vector<std::uint64_t> hashes(static_cast<std::size_t>(size));
  MPIPROC_CHECK(MPI_Allgather(&hash, 1, MPI_UINT64_T, hashes.data(), 1, MPI_UINT64_T, comm));
  int other = 1;
  while (other < size && hashes[static_cast<std::size_t>(other)] == hashes[0]) ++other;
  std::string calls[2];
  for (int k = 0; k < 2; ++k) {
    const int from = k == 0 ? 0 : other;
    std::string text = rank == from ? mine.describe() : std::string();
    unsigned long length = text.size();
    MPIPROC_CHECK(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG, from, comm));
    text.resize(length);
    MPIPROC_CHECK(MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, from, comm));
    calls[k] = std::move(text);
  }
  throw usage_error("mpiproc: the ranks made different collective calls: rank 0 called " + calls[0] + "; rank " +
                    std::to_string(other) + " called " + calls[1] +
                    ". Every rank must make the same call with the same range, schedule, root and operation");
}
}  // namespace

void agree_on_failure(MPI_Comm comm, std::exception_ptr local, const call_signature* signature,
                      const settle_fn& settle, bool break_shared) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  // Success costs one allreduce (the maximum of: failed, failed for a reason of its own, the call's
  // signature and its complement, so that differing signatures show as max != ~max(~)); only on
  // failure do the ranks agree on who failed first and share that rank's message. A rank that
  // failed for a reason of its own first breaks the shared state of this communicator, so that
  // ranks waiting for it there get here too; their failures (peer_failed) are named only if no
  // other kind happened.
  const bool own_reason = local && broken_by(local) < 0;
  if (local && break_shared) break_for_failure(comm, rank, local);
  const std::uint64_t hash = signature ? signature->hash() : 0;
  const std::uint64_t here[4] = {local ? 1u : 0u, own_reason ? 1u : 0u, hash, ~hash};
  std::uint64_t most[4] = {0, 0, 0, 0};
  // Waiting politely: a blocking collective would spin in MPI's progress engine and keep this
  // rank's service thread (which answers other ranks' queue, dict and lock requests) from running.
  MPI_Request pending = MPI_REQUEST_NULL;
  MPIPROC_CHECK(MPI_Iallreduce(here, most, 4, MPI_UINT64_T, MPI_MAX, comm, &pending));
  if (settle) {
    // The call's own messages (progress, a stop) all arrive before it ends, so that none is left.
    bool agreed = false, settled = false;
    poll_until(
        [&] {
          agreed = agreed || completed(pending);
          settled = settled || settle();
          return agreed && (settled || most[2] != ~most[3]);
        },
        std::nullopt);
  } else {
    complete_by(pending, std::nullopt);
  }
  if (most[2] != ~most[3]) report_disagreement(comm, rank, size, *signature);
  if (most[0] == 0) return;
  const int mine[2] = {local ? 1 : 0, own_reason ? 1 : 0};
  int counts[2] = {0, 0};
  MPIPROC_CHECK(MPI_Allreduce(mine, counts, 2, MPI_INT, MPI_SUM, comm));
  const bool by_own_reason = counts[1] > 0;
  const int failed_ranks = by_own_reason ? counts[1] : counts[0];
  const int candidate = (by_own_reason ? own_reason : local != nullptr) ? rank : size;
  int failed_rank = size;
  MPIPROC_CHECK(MPI_Allreduce(&candidate, &failed_rank, 1, MPI_INT, MPI_MIN, comm));
  std::string message = rank == failed_rank ? message_of(local) : std::string();
  // {length, its failure_kind}
  unsigned long header[2] = {message.size(), rank == failed_rank ? static_cast<unsigned long>(kind_of(local)) : 0ul};
  MPIPROC_CHECK(MPI_Bcast(header, 2, MPI_UNSIGNED_LONG, failed_rank, comm));
  message.resize(header[0]);
  MPIPROC_CHECK(MPI_Bcast(message.data(), static_cast<int>(header[0]), MPI_CHAR, failed_rank, comm));
  if (header[1] == misuse) throw usage_error("rank " + std::to_string(failed_rank) + ": " + message);
  if (header[1] == interruption) throw interrupted("rank " + std::to_string(failed_rank) + ": " + message);
  throw remote_error(failed_rank, std::move(message), failed_ranks);
}

}  // namespace mpiproc::detail
