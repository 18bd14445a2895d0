#include "communicator_state.hpp"
#include "registry.hpp"

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/pipe_channel.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>

#include <cstdlib>
#include <exception>
#include <optional>
#include <string>

namespace mpiproc {

namespace detail {

namespace {

/// The duplicates themselves, enrolled so that MPI_Finalize frees what is left of them.
struct duplicates : registered {
  MPI_Comm comm = MPI_COMM_NULL;     // collective calls
  MPI_Comm objects = MPI_COMM_NULL;  // every object's point-to-point messages

  void release() noexcept override {
    if (objects != MPI_COMM_NULL) {
      forget_pipe_drains(objects);
      MPI_Comm_free(&objects);
    }
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
};

MPI_Comm duplicate(MPI_Comm comm) {
  MPI_Comm copy = MPI_COMM_NULL;
  MPIPROC_CHECK(MPI_Comm_dup(comm, &copy));
  MPIPROC_CHECK(MPI_Comm_set_errhandler(copy, MPI_ERRORS_RETURN));
  return copy;
}

int tag_upper_bound(MPI_Comm comm) {
  void* upper = nullptr;
  int has = 0;
  MPIPROC_CHECK(MPI_Comm_get_attr(comm, MPI_TAG_UB, &upper, &has));
  return has ? *static_cast<int*>(upper) : 32767;
}

}  // namespace

struct communicator_handles {
  std::shared_ptr<duplicates> dups = std::make_shared<duplicates>();
  std::uint64_t finalize_id = enroll(MPI_COMM_NULL, dups);
  std::optional<transport> chosen;
  int tag_ub = 0;
  int map_tags = 0;  // tags [0, map_tags) of `objects` go to map calls, in turn
  int next_tag = 0;  // the first tag no object has

  /// Collective on first use: the duplicate that objects share.
  MPI_Comm objects() {
    if (dups->objects == MPI_COMM_NULL) {
      dups->objects = duplicate(dups->comm);
      tag_ub = tag_upper_bound(dups->objects);
      map_tags = std::min(16384, tag_ub / 4);
      next_tag = map_tags;
    }
    return dups->objects;
  }

  ~communicator_handles() {
    // While an exception unwinds, this rank may be the only one here: MPI_Finalize frees them.
    if (mpi_finalizing() || std::uncaught_exceptions() > 0) return;
    withdraw(finalize_id);
    dups->release();
  }
};

communicator_state::communicator_state(MPI_Comm user) {
  int initialized = 0;
  MPIPROC_CHECK(MPI_Initialized(&initialized));
  int finalized = 0;
  MPIPROC_CHECK(MPI_Finalized(&finalized));
  if (!initialized || finalized)
    throw usage_error("mpiproc::communicator: MPI is not initialized; create an mpiproc::environment first");
  if (user == MPI_COMM_NULL) throw usage_error("mpiproc::communicator: cannot use MPI_COMM_NULL");
  handles_ = std::make_shared<communicator_handles>();
  handles_->dups->comm = duplicate(user);
  MPIPROC_CHECK(MPI_Comm_rank(comm(), &rank_));
  MPIPROC_CHECK(MPI_Comm_size(comm(), &size_));
}

communicator_state::~communicator_state() {
  if (!counter_ || mpi_finalizing()) return;
  // While an exception unwinds, this rank may be the only one here: the counter's collective
  // free must not wait for it.
  if (std::uncaught_exceptions() > 0)
    counter_->abandon();
  else
    counter_->release();
}

MPI_Comm communicator_state::comm() const noexcept { return handles_->dups->comm; }

transport communicator_state::shared_state_transport() {
  if (!handles_->chosen) {
    require_mpi("making a lock, queue or other shared object");
    const char* name = std::getenv("MPIPROC_TRANSPORT") ? "MPIPROC_TRANSPORT" : "MPIPROC_COUNTER";
    const char* set = std::getenv(name);
    const std::string choice = set ? set : "";
    const std::string names[] = {"", "auto", "shared", "messages"};
    std::uint64_t mine = 4;  // not a name
    for (std::uint64_t k = 0; k < 4; ++k)
      if (choice == names[k]) mine = k;
    // Every rank must choose alike, or some would wait in a collective the others never enter.
    const auto [low, high] = min_max(comm(), mine);
    if (high == 4)
      throw usage_error(std::string(name) + " must be auto, shared or messages (or unset)" +
                        (mine == 4 ? ", not '" + choice + "'" : std::string(" on every rank")));
    if (low != high)
      throw usage_error(std::string(name) + " differs between ranks; set it alike on every rank (mpirun -x)");
    MPI_Comm node = MPI_COMM_NULL;
    MPIPROC_CHECK(MPI_Comm_split_type(comm(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    int node_size = 0;
    const int rc = MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
    check(rc, "MPI_Comm_size");
    const bool one_node = node_size == size_;
    if (choice == "shared" && !one_node)
      throw usage_error(std::string(name) + "=shared needs all ranks on one node");
    handles_->chosen = choice == "messages" || !one_node ? transport::messages : transport::shared_memory;
  }
  return *handles_->chosen;
}

object_channel communicator_state::new_object(int count, const char* what) {
  communicator_handles& h = *handles_;
  const MPI_Comm objects = h.objects();
  if (h.next_tag > h.tag_ub - count)
    throw usage_error(std::string("mpiproc: more ") + what + "s and other objects on one communicator than MPI's " +
                      std::to_string(h.tag_ub) + " tags allow; make the rest on a new communicator");
  const int first = h.next_tag;
  h.next_tag += count;
  return {handles_, objects, first};
}

chunk_counter& communicator_state::make_counter(const communicator& comm) {
  if (!counter_) counter_ = std::make_unique<chunk_counter>(comm);
  return *counter_;
}

void communicator_state::begin_map_call() {
  ++map_calls_begun_;
  if (size_ > 1) handles_->objects();
}

std::pair<MPI_Comm, int> communicator_state::map_call_channel() {
  const communicator_handles& h = *handles_;
  if (h.map_tags == 0) return {MPI_COMM_NULL, 0};
  return {h.dups->objects, static_cast<int>(map_calls_begun_ % static_cast<std::uint64_t>(h.map_tags))};
}

}  // namespace detail

communicator::communicator(MPI_Comm comm) : state_(std::make_shared<detail::communicator_state>(comm)) {}

int communicator::rank() const noexcept { return state_->rank(); }

int communicator::size() const noexcept { return state_->size(); }

MPI_Comm communicator::native() const noexcept { return state_->comm(); }

void communicator::barrier() const {
  const detail::collective_call entered(native(), "communicator::barrier");
  MPIPROC_CHECK(MPI_Barrier(native()));
}

}  // namespace mpiproc
