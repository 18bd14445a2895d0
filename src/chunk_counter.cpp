#include "chunk_counter.hpp"

#include <mpiproc/detail/check.hpp>

#include <atomic>

namespace mpiproc::detail {

namespace {
constexpr int owner = 0;
constexpr std::size_t slot_bytes = 2 * sizeof(std::uint64_t);
}  // namespace

chunk_counter::chunk_counter(MPI_Comm comm) {
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank_));
  if (shared_state_path(comm) != "rma") {
    slots_ = std::make_unique<shared_segment>(comm, rank_ == owner ? slot_bytes : 0);
    mapped_ = slots_->mapped_word(owner, 0);
    return;
  }
  std::uint64_t* base = nullptr;
  MPIPROC_CHECK(MPI_Win_allocate(rank_ == owner ? slot_bytes : 0, sizeof(std::uint64_t), MPI_INFO_NULL, comm, &base,
                                 &window_));
  MPIPROC_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
  if (rank_ == owner) base[0] = base[1] = 0;
  MPIPROC_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
  // Nobody may increment before the owner has zeroed both slots.
  MPIPROC_CHECK(MPI_Barrier(comm));
}

chunk_counter::~chunk_counter() { release(); }

void chunk_counter::release() noexcept {
  if (slots_) slots_->release();
  if (window_ != MPI_WIN_NULL) {
    MPI_Win_unlock_all(window_);
    MPI_Win_free(&window_);
  }
  mapped_ = nullptr;
}

void chunk_counter::abandon() noexcept {
  if (slots_) slots_->abandon();
  mapped_ = nullptr;
  window_ = MPI_WIN_NULL;  // rma: left to MPI_Finalize
}

void chunk_counter::begin_loop() {
  ++loop_;
  if (rank_ != owner) return;
  const std::size_t next_slot = loop_ % 2 * 8;
  if (slots_) {
    slots_->store(owner, next_slot, 0);
    return;
  }
  const std::uint64_t zero = 0;
  MPIPROC_CHECK(MPI_Accumulate(&zero, 1, MPI_UINT64_T, owner, static_cast<MPI_Aint>(next_slot / 8), 1, MPI_UINT64_T,
                               MPI_REPLACE, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

std::uint64_t chunk_counter::next() {
  if (mapped_) return std::atomic_ref<std::uint64_t>(mapped_[slot() / 8]).fetch_add(1);
  if (slots_) return slots_->fetch_add(owner, slot(), 1);
  const std::uint64_t one = 1;
  std::uint64_t taken = 0;
  MPIPROC_CHECK(MPI_Fetch_and_op(&one, &taken, MPI_UINT64_T, owner, static_cast<MPI_Aint>(slot() / 8), MPI_SUM, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
  return taken;
}

void chunk_counter::cancel(std::uint64_t end) {
  if (slots_) {
    slots_->raise_to(owner, slot(), end);
    return;
  }
  MPIPROC_CHECK(MPI_Accumulate(&end, 1, MPI_UINT64_T, owner, static_cast<MPI_Aint>(slot() / 8), 1, MPI_UINT64_T,
                               MPI_MAX, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

}  // namespace mpiproc::detail
