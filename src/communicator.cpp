#include "chunk_counter.hpp"
#include "finalize_hook.hpp"

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/pipe_channel.hpp>
#include <mpiproc/error.hpp>

#include <exception>

namespace mpiproc {

namespace detail {

namespace {

/// The MPI objects one communicator owns. Freeing them is collective.
struct mpi_handles {
  MPI_Comm comm = MPI_COMM_NULL;
  std::unique_ptr<chunk_counter> counter;
  MPI_Comm channels = MPI_COMM_NULL;  // pipes' messages, each pipe on tags of its own
  std::uint64_t channels_made = 0;
  MPI_Comm map_calls = MPI_COMM_NULL;  // progress and time-limit messages of map calls
  std::uint64_t map_calls_begun = 0;

  void release() noexcept {
    if (counter) counter->release();
    if (channels != MPI_COMM_NULL) {
      forget_pipe_drains(channels);
      MPI_Comm_free(&channels);
    }
    if (map_calls != MPI_COMM_NULL) MPI_Comm_free(&map_calls);
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

}  // namespace

struct communicator_state {
  std::shared_ptr<mpi_handles> handles = std::make_shared<mpi_handles>();
  std::uint64_t finalize_id = 0;
  int rank = 0;
  int size = 1;

  explicit communicator_state(MPI_Comm user) {
    int initialized = 0;
    MPIPROC_CHECK(MPI_Initialized(&initialized));
    int finalized = 0;
    MPIPROC_CHECK(MPI_Finalized(&finalized));
    if (!initialized || finalized)
      throw usage_error("mpiproc::communicator: MPI is not initialized; create an mpiproc::environment first");
    if (user == MPI_COMM_NULL) throw usage_error("mpiproc::communicator: cannot use MPI_COMM_NULL");
    MPIPROC_CHECK(MPI_Comm_dup(user, &handles->comm));
    finalize_id = release_at_finalize([h = handles] { h->release(); });
    MPIPROC_CHECK(MPI_Comm_set_errhandler(handles->comm, MPI_ERRORS_RETURN));
    MPIPROC_CHECK(MPI_Comm_rank(handles->comm, &rank));
    MPIPROC_CHECK(MPI_Comm_size(handles->comm, &size));
  }

  ~communicator_state() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    // While an exception unwinds, this rank may be the only one here: the counter's collective
    // free must not wait for it (the communicators are freed at MPI_Finalize).
    if (std::uncaught_exceptions() > 0) {
      if (handles->counter) handles->counter->abandon();
      return;
    }
    forget_at_finalize(finalize_id);
    handles->release();
  }
};

}  // namespace detail

communicator::communicator(MPI_Comm comm) : state_(std::make_shared<detail::communicator_state>(comm)) {}

int communicator::rank() const noexcept { return state_->rank; }

int communicator::size() const noexcept { return state_->size; }

MPI_Comm communicator::native() const noexcept { return state_->handles->comm; }

void communicator::barrier() const {
  const detail::collective_call entered(native(), "communicator::barrier");
  MPIPROC_CHECK(MPI_Barrier(native()));
}

detail::chunk_counter& communicator::chunk_counter() const {
  auto& counter = state_->handles->counter;
  if (!counter) counter = std::make_unique<detail::chunk_counter>(native());
  return *counter;
}

bool communicator::has_chunk_counter() const noexcept { return state_->handles->counter != nullptr; }

void communicator::begin_map_call() const {
  auto& h = *state_->handles;
  ++h.map_calls_begun;
  if (h.map_calls == MPI_COMM_NULL && size() > 1) {
    MPIPROC_CHECK(MPI_Comm_dup(h.comm, &h.map_calls));
    MPIPROC_CHECK(MPI_Comm_set_errhandler(h.map_calls, MPI_ERRORS_RETURN));
  }
}

std::pair<MPI_Comm, std::uint64_t> communicator::map_call_channel() const {
  const auto& h = *state_->handles;
  return {h.map_calls, h.map_calls_begun};
}

std::pair<MPI_Comm, std::uint64_t> communicator::new_channel() const {
  auto& h = *state_->handles;
  detail::enter_construction(h.comm, "a pipe");
  if (h.channels == MPI_COMM_NULL) {
    MPIPROC_CHECK(MPI_Comm_dup(h.comm, &h.channels));
    MPIPROC_CHECK(MPI_Comm_set_errhandler(h.channels, MPI_ERRORS_RETURN));
  }
  return {h.channels, h.channels_made++};
}

}  // namespace mpiproc
