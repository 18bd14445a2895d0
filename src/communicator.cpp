#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/chunk_counter.hpp>
#include <mpiproc/error.hpp>

namespace mpiproc {

namespace detail {

struct communicator_state {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  std::unique_ptr<detail::chunk_counter> counter;

  explicit communicator_state(MPI_Comm user) {
    int initialized = 0;
    MPIPROC_CHECK(MPI_Initialized(&initialized));
    int finalized = 0;
    MPIPROC_CHECK(MPI_Finalized(&finalized));
    if (!initialized || finalized)
      throw usage_error("mpiproc::communicator: MPI is not initialized; create an mpiproc::environment first");
    if (user == MPI_COMM_NULL) throw usage_error("mpiproc::communicator: cannot use MPI_COMM_NULL");
    MPIPROC_CHECK(MPI_Comm_dup(user, &comm));
    MPIPROC_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
    MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  }

  ~communicator_state() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // MPI already released everything; touching it now is an error
    counter.reset();
    MPI_Comm_free(&comm);
  }
};

}  // namespace detail

communicator::communicator(MPI_Comm comm) : state_(std::make_shared<detail::communicator_state>(comm)) {}

int communicator::rank() const noexcept { return state_->rank; }

int communicator::size() const noexcept { return state_->size; }

MPI_Comm communicator::native() const noexcept { return state_->comm; }

void communicator::barrier() const { MPIPROC_CHECK(MPI_Barrier(state_->comm)); }

detail::chunk_counter& communicator::chunk_counter() const {
  if (!state_->counter) state_->counter = std::make_unique<detail::chunk_counter>(state_->comm);
  return *state_->counter;
}

}  // namespace mpiproc
