#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/chunk_counter.hpp>

namespace mpiproc::detail {

namespace {
constexpr int slots = 2;
constexpr int owner = 0;
}  // namespace

chunk_counter::chunk_counter(MPI_Comm comm) {
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank_));
  std::uint64_t* base = nullptr;
  MPI_Aint bytes = rank_ == owner ? slots * sizeof(std::uint64_t) : 0;
  MPIPROC_CHECK(MPI_Win_allocate(bytes, sizeof(std::uint64_t), MPI_INFO_NULL, comm, &base, &window_));
  MPIPROC_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
  MPIPROC_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
  if (rank_ == owner) {
    // Through RMA, not a plain store, so that the zeros are visible under any window memory model.
    const std::uint64_t zeros[slots] = {0, 0};
    MPIPROC_CHECK(MPI_Accumulate(zeros, slots, MPI_UINT64_T, owner, 0, slots, MPI_UINT64_T, MPI_REPLACE, window_));
    MPIPROC_CHECK(MPI_Win_flush(owner, window_));
  }
  // Nobody may increment before the owner has zeroed both slots.
  MPIPROC_CHECK(MPI_Barrier(comm));
}

chunk_counter::~chunk_counter() { release(); }

void chunk_counter::release() noexcept {
  if (window_ == MPI_WIN_NULL) return;
  MPI_Win_unlock_all(window_);
  MPI_Win_free(&window_);
  window_ = MPI_WIN_NULL;
}

void chunk_counter::begin_loop() {
  ++loop_;
  if (rank_ != owner) return;
  const std::uint64_t zero = 0;
  const MPI_Aint next_slot = loop_ % slots;
  MPIPROC_CHECK(MPI_Accumulate(&zero, 1, MPI_UINT64_T, owner, next_slot, 1, MPI_UINT64_T, MPI_REPLACE, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

std::uint64_t chunk_counter::next() {
  const std::uint64_t one = 1;
  std::uint64_t taken = 0;
  const MPI_Aint slot = (loop_ - 1) % slots;
  MPIPROC_CHECK(MPI_Fetch_and_op(&one, &taken, MPI_UINT64_T, owner, slot, MPI_SUM, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
  return taken;
}

void chunk_counter::cancel(std::uint64_t end) {
  const MPI_Aint slot = (loop_ - 1) % slots;
  MPIPROC_CHECK(MPI_Accumulate(&end, 1, MPI_UINT64_T, owner, slot, 1, MPI_UINT64_T, MPI_MAX, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

}  // namespace mpiproc::detail
