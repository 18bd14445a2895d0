#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/chunk_counter.hpp>

#include <atomic>

namespace mpiproc::detail {

namespace {
constexpr int slots = 2;
constexpr int owner = 0;

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "the shared-memory counter needs lock-free 64-bit atomics, which work across processes");

/// Whether every rank of `comm` shares one node's memory (the same answer on every rank: if the
/// ranks span several nodes, every node holds fewer than all of them).
bool on_one_node(MPI_Comm comm) {
  int size = 0;
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  MPI_Comm node = MPI_COMM_NULL;
  MPIPROC_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int node_size = 0;
  const int rc = MPI_Comm_size(node, &node_size);
  MPI_Comm_free(&node);
  check(rc, "MPI_Comm_size");
  return node_size == size;
}
}  // namespace

chunk_counter::chunk_counter(MPI_Comm comm) {
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank_));
  const MPI_Aint bytes = rank_ == owner ? slots * sizeof(std::uint64_t) : 0;
  std::uint64_t* base = nullptr;
  if (on_one_node(comm)) {
    MPIPROC_CHECK(MPI_Win_allocate_shared(bytes, sizeof(std::uint64_t), MPI_INFO_NULL, comm, &base, &window_));
    MPIPROC_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
    MPI_Aint owner_bytes = 0;
    int unit = 0;
    MPIPROC_CHECK(MPI_Win_shared_query(window_, owner, &owner_bytes, &unit, &shared_));
  } else {
    MPIPROC_CHECK(MPI_Win_allocate(bytes, sizeof(std::uint64_t), MPI_INFO_NULL, comm, &base, &window_));
    MPIPROC_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
  }
  MPIPROC_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
  if (rank_ == owner)
    for (MPI_Aint slot = 0; slot < slots; ++slot) store(slot, 0);
  // Nobody may increment before the owner has zeroed both slots.
  MPIPROC_CHECK(MPI_Barrier(comm));
}

chunk_counter::~chunk_counter() { release(); }

void chunk_counter::release() noexcept {
  if (window_ == MPI_WIN_NULL) return;
  MPI_Win_unlock_all(window_);
  MPI_Win_free(&window_);
  window_ = MPI_WIN_NULL;
  shared_ = nullptr;
}

void chunk_counter::store(MPI_Aint slot, std::uint64_t value) {
  if (shared_) {
    std::atomic_ref<std::uint64_t>(shared_[slot]).store(value);
    return;
  }
  MPIPROC_CHECK(MPI_Accumulate(&value, 1, MPI_UINT64_T, owner, slot, 1, MPI_UINT64_T, MPI_REPLACE, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

void chunk_counter::begin_loop() {
  ++loop_;
  if (rank_ == owner) store(loop_ % slots, 0);
}

std::uint64_t chunk_counter::next() {
  const MPI_Aint slot = (loop_ - 1) % slots;
  if (shared_) return std::atomic_ref<std::uint64_t>(shared_[slot]).fetch_add(1);
  const std::uint64_t one = 1;
  std::uint64_t taken = 0;
  MPIPROC_CHECK(MPI_Fetch_and_op(&one, &taken, MPI_UINT64_T, owner, slot, MPI_SUM, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
  return taken;
}

void chunk_counter::cancel(std::uint64_t end) {
  const MPI_Aint slot = (loop_ - 1) % slots;
  if (shared_) {
    std::atomic_ref<std::uint64_t> counter(shared_[slot]);
    for (std::uint64_t seen = counter.load(); seen < end && !counter.compare_exchange_weak(seen, end);) {
    }
    return;
  }
  MPIPROC_CHECK(MPI_Accumulate(&end, 1, MPI_UINT64_T, owner, slot, 1, MPI_UINT64_T, MPI_MAX, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

}  // namespace mpiproc::detail
