#pragma once

#include <mpiproc/detail/collective.hpp>

#include <mpi.h>

#include <cstddef>
#include <exception>
#include <functional>
#include <utility>

namespace mpiproc::detail {

/// Called by agree_on_failure while it waits, until it returns true (see call_monitor).
using settle_fn = std::function<bool()>;

/// A call's result reduced within its failure agreement, so that a reduction with an operator
/// mpiproc knows costs one exchange, as a hand-written MPI_Allreduce does: `bytes` holds this
/// rank's partial result going in and every rank's, folded, coming out. fold(op, lower, higher,
/// out) folds two partials (the lower ranks' first) with the operator at `op`; it must not throw.
struct fused_value {
  static constexpr std::size_t capacity = 16;
  alignas(16) unsigned char bytes[capacity] = {};
  void (*fold)(const void* op, const void* lower, const void* higher, void* out) = nullptr;
  const void* op = nullptr;
};

/// Collective: if `local` holds an exception on any rank, throws the same remote_error (naming the
/// lowest failing rank and its message) on every rank, or usage_error if that rank's exception was
/// one (misuse); otherwise returns. With a signature, ranks whose calls differ (another range,
/// schedule, root or operation) all throw usage_error naming the two calls instead. When nothing
/// failed it costs one exchange of 48 bytes between ranks (a few point-to-point messages on
/// `comm`, which carries no others), which also folds `value` when given (see fused_value). With
/// `settle`, it calls settle() while it waits and returns (or throws) only once settle() returned
/// true (see call_monitor), unless the calls differ. `break_shared`: a rank that failed first
/// breaks the shared state made on `comm` (see break_for_failure); not a watchdog's agreement for
/// a stuck rank, whose main thread may be using that state (the other ranks hear of it from the
/// call's own messages).
void agree_on_failure(MPI_Comm comm, std::exception_ptr local, const call_signature* signature = nullptr,
                      const settle_fn& settle = {}, bool break_shared = true, fused_value* value = nullptr);

/// Breaks the shared state made on `comm` because this rank's part failed with `failure`: in the
/// name of this rank (`rank`, numbered as the error agreement numbers it) for a failure of its own,
/// or of the rank whose failure broke this rank's wait. `failure` is not null. Never throws.
void break_for_failure(MPI_Comm comm, int rank, const std::exception_ptr& failure) noexcept;

/// Runs this rank's part of a collective operation, then agrees with the other ranks on whether
/// any part failed, so that an exception on one rank reaches all and nobody waits forever.
/// Collective, before a call over items sends them from `source`: the ranks agree on the call,
/// the schedule, the root, the source, the item type and whether a checkpoint is kept first
/// (usage_error on every rank if they differ), so that a mismatch never reaches the broadcast or
/// scatter, where it would hang or crash. It makes the same exchange as the agreement that ends a
/// call over a range, so a rank calling the range form against the items form is caught too.
template <class Item>
void agree_before_broadcast(MPI_Comm comm, const char* call, const schedule& s, int root, int source,
                            bool checkpointed = false) {
  call_signature sig = signature_of<void, Item>(call, 0, 0, s, root);
  sig.source = source;
  sig.checkpointed = checkpointed;  // decides, with the schedule, how the items travel
  agree_on_failure(comm, nullptr, &sig);
}

/// The caller holds the call's collective_call.
template <class Work>
void run_collectively(MPI_Comm comm, const call_signature& signature, Work&& work) {
  std::exception_ptr failure;
  try {
    std::forward<Work>(work)();
  } catch (...) {
    failure = std::current_exception();
  }
  agree_on_failure(comm, failure, &signature);
}

}  // namespace mpiproc::detail
