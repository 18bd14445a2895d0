#include "registry.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
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

namespace {
/// What each rank brings to an agreement and what every rank ends with: {failed, failed for a
/// reason of its own, the call's signature hash, its complement}, each the maximum over the ranks,
/// and the fused result (see fused_value).
struct agreement {
  std::uint64_t words[4];
  alignas(16) unsigned char value[fused_value::capacity];
};

/// The agreement's messages travel on the call's communicator, the private duplicate of
/// collective calls, which carries no other point-to-point message but, after the agreement
/// before them, a map's results (tag 2, map.hpp) and shares of items (tag 3, item_shares.hpp), and
/// the rendezvous of calls (collective.cpp).
constexpr int agreement_tag = 1;

/// Folds a partner's agreement into this rank's. The values fold only where both sides made the
/// same call and nothing failed: another call's bytes are not this call's type.
void fold_into(agreement& mine, const agreement& theirs, bool mine_lower, const fused_value* value) {
  const bool same_call = mine.words[2] == theirs.words[2] && mine.words[3] == theirs.words[3] &&
                         mine.words[2] == ~mine.words[3] && (mine.words[0] | theirs.words[0]) == 0;
  if (value && value->fold && same_call) {
    unsigned char out[fused_value::capacity];
    value->fold(value->op, mine_lower ? mine.value : theirs.value, mine_lower ? theirs.value : mine.value, out);
    std::memcpy(mine.value, out, sizeof out);
  }
  for (int k = 0; k < 4; ++k) mine.words[k] = std::max(mine.words[k], theirs.words[k]);
}

/// Every rank's agreement folded into `mine` on every rank, by recursive doubling over
/// point-to-point messages (log2 of the ranks steps; with ranks beyond a power of two, each first
/// hands its part to a partner below and gets the result back from it). A wait polls (see
/// poll_until), calling settle() until it returned true once.
void exchange(MPI_Comm comm, int rank, int size, agreement& mine, const fused_value* value, const settle_fn& settle,
              bool& settled) {
  agreement theirs{};
  auto wait = [&](MPI_Request* requests, int count) {
    poll_until(
        [&] {
          if (settle && !settled) settled = settle();
          int done = 0;
          MPIPROC_CHECK(MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE));
          return done != 0;
        },
        std::nullopt);
  };
  auto post = [&](MPI_Request* requests, int to, int from) {
    int count = 0;
    if (from >= 0) MPIPROC_CHECK(MPI_Irecv(&theirs, sizeof theirs, MPI_BYTE, from, agreement_tag, comm, &requests[count++]));
    if (to >= 0) MPIPROC_CHECK(MPI_Isend(&mine, sizeof mine, MPI_BYTE, to, agreement_tag, comm, &requests[count++]));
    wait(requests, count);
  };
  MPI_Request requests[2];
  int lower = 1;  // the largest power of two not above size
  while (lower <= size / 2) lower *= 2;
  if (rank >= lower) {
    post(requests, rank - lower, rank - lower);
    mine = theirs;
    return;
  }
  if (rank + lower < size) {
    post(requests, -1, rank + lower);
    fold_into(mine, theirs, true, value);
  }
  for (int step = 1; step < lower; step *= 2) {
    const int partner = rank ^ step;
    post(requests, partner, partner);
    fold_into(mine, theirs, rank < partner, value);
  }
  if (rank + lower < size) post(requests, rank + lower, -1);
}
}  // namespace

void agree_on_failure(MPI_Comm comm, std::exception_ptr local, const call_signature* signature,
                      const settle_fn& settle, bool break_shared, fused_value* value) {
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  // Success costs one exchange (the maximum of: failed, failed for a reason of its own, the call's
  // signature and its complement, so that differing signatures show as max != ~max(~); and the
  // fused result); only on failure do the ranks agree on who failed first and share that rank's
  // message. A rank that failed for a reason of its own first breaks the shared state of this
  // communicator, so that ranks waiting for it there get here too; their failures (peer_failed)
  // are named only if no other kind happened. The exchange polls rather than block: a blocking MPI
  // call would spin in MPI's progress engine and keep this rank's service thread (which answers
  // other ranks' queue, dict and lock requests) from running.
  const bool own_reason = local && broken_by(local) < 0;
  if (local && break_shared) break_for_failure(comm, rank, local);
  const std::uint64_t hash = signature ? signature->hash() : 0;
  agreement agreed{{local ? 1u : 0u, own_reason ? 1u : 0u, hash, ~hash}, {}};
  if (value) std::memcpy(agreed.value, value->bytes, sizeof agreed.value);
  // The call's own messages (progress, a stop) all arrive before it ends, so that none is left.
  bool settled = false;
  exchange(comm, rank, size, agreed, value, settle, settled);
  const std::uint64_t* most = agreed.words;
  if (settle && most[2] == ~most[3]) poll_until([&] { return settled || (settled = settle()); }, std::nullopt);
  if (value) std::memcpy(value->bytes, agreed.value, sizeof agreed.value);
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
