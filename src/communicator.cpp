#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/chunk_counter.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <exception>
#include <vector>

namespace mpiproc {

namespace detail {

namespace {

/// The MPI objects one communicator owns. Freeing them is collective.
struct mpi_handles {
  MPI_Comm comm = MPI_COMM_NULL;
  std::unique_ptr<chunk_counter> counter;

  void release() noexcept {
    if (counter) counter->release();
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

/// Every set of handles not yet freed, in creation order (the same on every rank, since
/// communicators are created collectively).
std::vector<std::shared_ptr<mpi_handles>>& unreleased() {
  static std::vector<std::shared_ptr<mpi_handles>> handles;
  return handles;
}

/// Called at the start of MPI_Finalize (an attribute of MPI_COMM_SELF is deleted first): frees what
/// is left (communicators that outlive the environment, or were dropped while an exception unwound)
/// while MPI still works, so that no window is left locked at finalization.
int release_at_finalize(MPI_Comm, int, void*, void*) {
  auto& handles = unreleased();
  for (auto it = handles.rbegin(); it != handles.rend(); ++it) (*it)->release();
  handles.clear();
  return MPI_SUCCESS;
}

void hook_finalize() {
  static int keyval = MPI_KEYVAL_INVALID;
  if (keyval != MPI_KEYVAL_INVALID) return;
  MPIPROC_CHECK(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, release_at_finalize, &keyval, nullptr));
  MPIPROC_CHECK(MPI_Comm_set_attr(MPI_COMM_SELF, keyval, nullptr));
}

}  // namespace

struct communicator_state {
  std::shared_ptr<mpi_handles> handles = std::make_shared<mpi_handles>();
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
    hook_finalize();
    MPIPROC_CHECK(MPI_Comm_dup(user, &handles->comm));
    unreleased().push_back(handles);
    MPIPROC_CHECK(MPI_Comm_set_errhandler(handles->comm, MPI_ERRORS_RETURN));
    MPIPROC_CHECK(MPI_Comm_rank(handles->comm, &rank));
    MPIPROC_CHECK(MPI_Comm_size(handles->comm, &size));
  }

  ~communicator_state() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    // While an exception unwinds, this rank may be the only one here: a collective free could
    // wait forever, so leave it to MPI_Finalize (or to the abort that follows).
    if (finalized || std::uncaught_exceptions() > 0) return;
    handles->release();
    auto& all = unreleased();
    all.erase(std::remove(all.begin(), all.end(), handles), all.end());
  }
};

}  // namespace detail

communicator::communicator(MPI_Comm comm) : state_(std::make_shared<detail::communicator_state>(comm)) {}

int communicator::rank() const noexcept { return state_->rank; }

int communicator::size() const noexcept { return state_->size; }

MPI_Comm communicator::native() const noexcept { return state_->handles->comm; }

void communicator::barrier() const { MPIPROC_CHECK(MPI_Barrier(native())); }

detail::chunk_counter& communicator::chunk_counter() const {
  auto& counter = state_->handles->counter;
  if (!counter) counter = std::make_unique<detail::chunk_counter>(native());
  return *counter;
}

}  // namespace mpiproc
