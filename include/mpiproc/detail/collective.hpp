#pragma once

#include <mpiproc/schedule.hpp>

#include <mpi.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <typeinfo>

namespace mpiproc {
class communicator;
}

namespace mpiproc::detail {

/// What one collective call was asked to do, as every rank must ask it: the call, the positions
/// (count and first item), the schedule, the root and the types of the operation and result.
/// Ranks fold its hash into the agreement that ends the call, so that ranks that disagree get a
/// usage_error rather than a wrong answer, at no extra collective.
struct call_signature {
  const char* call = "";
  std::uint64_t count = 0;
  std::uint64_t first = 0;
  int schedule_kind = 0;
  std::int64_t chunk = 0;
  int root = -1;
  int source = -1;  // the rank whose items are broadcast, for the calls over items
  const std::type_info* operation = nullptr;  // the reduction's operator, if any
  const std::type_info* result = nullptr;
  bool checkpointed = false;  // the call records its progress in a checkpoint file
  std::uint8_t options = 0;   // 1: progress, 2: a chunk time limit (see with_options)
  // Not agreed on (it follows from `call`): a chunk form, whose function gets the scheduled chunks
  // whole, never slices of them, so that its chunk boundaries never depend on timing.
  bool whole_chunks = false;

  /// The same on ranks that were asked the same; cheap (no strings built).
  std::uint64_t hash() const noexcept;
  /// For the error message: "map_reduce over 100 items from 0, schedule dynamic(4), ...".
  std::string describe() const;
};

/// What a map-style call over `n` positions starting at `first` was asked (see call_signature).
template <class Op = void, class R = void>
call_signature signature_of(const char* call, std::int64_t n, std::uint64_t first, const schedule& s, int root) {
  call_signature sig;
  sig.call = call;
  sig.count = static_cast<std::uint64_t>(n);
  sig.first = first;
  sig.schedule_kind = static_cast<int>(s.type());
  sig.chunk = s.chunk();
  sig.root = root;
  if constexpr (!std::is_void_v<Op>) sig.operation = &typeid(Op);
  if constexpr (!std::is_void_v<R>) sig.result = &typeid(R);
  return sig;
}

/// The start of a collective call on `comm`, kept for its duration (RAII). Throws usage_error on
/// this rank, before any communication, if MPI is finalized, or if another collective call on
/// the same communicator is still running on this rank (a map started inside another map's
/// function on the same communicator would share its chunk counter and silently lose items).
/// With MPIPROC_COLLECTIVE_TIMEOUT set (debug mode), it first checks that every rank entered the
/// same call, and throws usage_error naming the ranks missing from the call after that many
/// seconds, or the rank that entered another call.
class collective_call {
 public:
  collective_call(MPI_Comm comm, const char* name);
  /// For a map over `loop_comm`: also readies its chunk counter for this call (creating it on the
  /// first map call, whatever the schedule, so that ranks that disagree on the schedule still meet
  /// in the same collective calls and reach the agreement that reports it).
  collective_call(const communicator& loop_comm, const char* name);
  ~collective_call();
  collective_call(const collective_call&) = delete;
  collective_call& operator=(const collective_call&) = delete;

 private:
  void enter(const char* name, const communicator* loop_comm);

  MPI_Comm comm_;
};

/// Throws usage_error if MPI was finalized (or is not initialized): `what` names the operation.
void require_mpi(const char* what);

/// The start of a collective construction over `comm` (a shared object, a pipe; `what` names it):
/// throws usage_error if MPI is finalized or if a collective call on `comm` is running on this rank
/// (the object would be made by only the ranks running that call's function), and in debug mode
/// checks that every rank entered it, as collective_call does. Nothing is kept: the construction's
/// own collective calls follow at once.
void enter_construction(MPI_Comm comm, const char* what);

}  // namespace mpiproc::detail
