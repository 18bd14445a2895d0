#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/chunk_counter.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/error.hpp>

#include <atomic>
#include <chrono>
#include <string>

namespace mpiproc::detail {

namespace {
constexpr int slots = 2;
constexpr int owner = 0;

// The messages path: a request is {what, slot, value}; every request gets a reply, so that its
// effect is in place before the requesting rank goes on (a cancel must land before the loop ends).
constexpr int request_tag = 1, reply_tag = 2;
enum : std::uint64_t { take = 0, raise_to = 1, stop = 2 };

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "the shared-memory counter needs lock-free 64-bit atomics, which work across processes");

chunk_counter::path choose_path(MPI_Comm comm) {
  const std::string choice = shared_state_path(comm);
  const bool one_node = on_one_node(comm);
  if (choice == "messages") return chunk_counter::path::messages;
  if (choice == "rma") return chunk_counter::path::rma;
  if (choice == "shared") {
    if (!one_node) throw usage_error("MPIPROC_COUNTER=shared needs all ranks on one node");
    return chunk_counter::path::shared;
  }
  return one_node ? chunk_counter::path::shared : chunk_counter::path::messages;
}

void atomic_raise(std::uint64_t& slot, std::uint64_t value) {
  std::atomic_ref<std::uint64_t> counter(slot);
  for (std::uint64_t seen = counter.load(); seen < value && !counter.compare_exchange_weak(seen, value);) {
  }
}
}  // namespace

chunk_counter::chunk_counter(MPI_Comm comm) : path_(choose_path(comm)) {
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank_));
  const MPI_Aint bytes = rank_ == owner ? slots * sizeof(std::uint64_t) : 0;
  std::uint64_t* base = nullptr;
  switch (path_) {
    case path::shared: {
      MPIPROC_CHECK(MPI_Win_allocate_shared(bytes, sizeof(std::uint64_t), MPI_INFO_NULL, comm, &base, &window_));
      MPIPROC_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
      MPI_Aint owner_bytes = 0;
      int unit = 0;
      MPIPROC_CHECK(MPI_Win_shared_query(window_, owner, &owner_bytes, &unit, &shared_));
      MPIPROC_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
      break;
    }
    case path::rma:
      MPIPROC_CHECK(MPI_Win_allocate(bytes, sizeof(std::uint64_t), MPI_INFO_NULL, comm, &base, &window_));
      MPIPROC_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
      MPIPROC_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
      break;
    case path::messages: {
      int level = MPI_THREAD_SINGLE;
      MPIPROC_CHECK(MPI_Query_thread(&level));
      if (level < MPI_THREAD_MULTIPLE)
        throw usage_error("dynamic and guided schedules over several nodes need MPI_THREAD_MULTIPLE (an "
                          "mpiproc::environment asks for it); use block or cyclic, or initialize MPI with it");
      MPIPROC_CHECK(MPI_Comm_dup(comm, &service_));
      MPIPROC_CHECK(MPI_Comm_set_errhandler(service_, MPI_ERRORS_RETURN));
      if (rank_ == owner) {
        shared_ = owned_;
        server_ = std::thread([this] { serve(); });
      }
      break;
    }
  }
  if (rank_ == owner)
    for (MPI_Aint slot = 0; slot < slots; ++slot) store(slot, 0);
  // Nobody may increment before the owner has zeroed both slots.
  MPIPROC_CHECK(MPI_Barrier(comm));
}

chunk_counter::~chunk_counter() { release(); }

void chunk_counter::release() noexcept {
  if (server_.joinable()) {
    const std::uint64_t request[3] = {stop, 0, 0};
    MPI_Send(request, 3, MPI_UINT64_T, owner, request_tag, service_);
    server_.join();
  }
  if (service_ != MPI_COMM_NULL) MPI_Comm_free(&service_);
  if (window_ != MPI_WIN_NULL) {
    MPI_Win_unlock_all(window_);
    MPI_Win_free(&window_);
  }
  shared_ = nullptr;
}

void chunk_counter::serve() noexcept {
  using namespace std::chrono_literals;
  for (;;) {
    std::uint64_t request[3] = {stop, 0, 0};
    MPI_Request pending = MPI_REQUEST_NULL;
    MPI_Status status;
    if (MPI_Irecv(request, 3, MPI_UINT64_T, MPI_ANY_SOURCE, request_tag, service_, &pending) != MPI_SUCCESS) return;
    // Poll rather than block: a blocking receive spins a whole core, which the owner's own work
    // needs. Stay responsive (yielding) for a while after each request, as the next one tends to
    // follow soon; sleep in short steps once the traffic stops.
    const auto served = std::chrono::steady_clock::now();
    for (int done = 0;;) {
      if (MPI_Test(&pending, &done, &status) != MPI_SUCCESS) return;
      if (done) break;
      if (std::chrono::steady_clock::now() - served < 2ms)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(50us);
    }
    if (request[0] == stop) return;
    std::uint64_t& slot = owned_[request[1] % slots];
    std::uint64_t reply = 0;
    if (request[0] == take)
      reply = std::atomic_ref<std::uint64_t>(slot).fetch_add(1);
    else
      atomic_raise(slot, request[2]);
    if (MPI_Send(&reply, 1, MPI_UINT64_T, status.MPI_SOURCE, reply_tag, service_) != MPI_SUCCESS) return;
  }
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
  std::uint64_t taken = 0;
  if (path_ == path::messages) {
    const std::uint64_t request[3] = {take, static_cast<std::uint64_t>(slot), 0};
    MPIPROC_CHECK(MPI_Send(request, 3, MPI_UINT64_T, owner, request_tag, service_));
    MPIPROC_CHECK(MPI_Recv(&taken, 1, MPI_UINT64_T, owner, reply_tag, service_, MPI_STATUS_IGNORE));
    return taken;
  }
  const std::uint64_t one = 1;
  MPIPROC_CHECK(MPI_Fetch_and_op(&one, &taken, MPI_UINT64_T, owner, slot, MPI_SUM, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
  return taken;
}

void chunk_counter::cancel(std::uint64_t end) {
  const MPI_Aint slot = (loop_ - 1) % slots;
  if (shared_) {
    atomic_raise(shared_[slot], end);
    return;
  }
  if (path_ == path::messages) {
    const std::uint64_t request[3] = {raise_to, static_cast<std::uint64_t>(slot), end};
    std::uint64_t ack = 0;
    MPIPROC_CHECK(MPI_Send(request, 3, MPI_UINT64_T, owner, request_tag, service_));
    MPIPROC_CHECK(MPI_Recv(&ack, 1, MPI_UINT64_T, owner, reply_tag, service_, MPI_STATUS_IGNORE));
    return;
  }
  MPIPROC_CHECK(MPI_Accumulate(&end, 1, MPI_UINT64_T, owner, slot, 1, MPI_UINT64_T, MPI_MAX, window_));
  MPIPROC_CHECK(MPI_Win_flush(owner, window_));
}

}  // namespace mpiproc::detail
