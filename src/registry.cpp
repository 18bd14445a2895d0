#include "registry.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/peer_failed.hpp>
#include <mpiproc/detail/poller.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mpiproc::detail {

namespace {

struct entry {
  MPI_Comm comm;
  std::shared_ptr<registered> thing;
};

struct registry {
  std::mutex mutex;
  std::map<std::uint64_t, entry> live;  // by id: in the order they were made
  std::uint64_t next_id = 0;
  int keyval = MPI_KEYVAL_INVALID;
};

registry& the_registry() {
  static registry r;
  return r;
}

std::atomic<bool> finalizing{false};

/// The delete callback of an attribute on MPI_COMM_SELF, which MPI_Finalize deletes first.
int release_all(MPI_Comm, int, void*, void*) {
  finalizing = true;
  auto& r = the_registry();
  std::map<std::uint64_t, entry> left;
  {
    std::lock_guard guard(r.mutex);
    left.swap(r.live);
  }
  for (auto it = left.rbegin(); it != left.rend(); ++it) it->second.thing->release();
  return MPI_SUCCESS;
}

}  // namespace

peer_failed::peer_failed(int rank)
    : error("rank " + std::to_string(rank) + " failed while this rank waited on shared state"), rank_(rank) {}

void fail_broken(std::atomic<bool>& seen_broken, std::uint64_t mark) {
  seen_broken = true;
  throw peer_failed(static_cast<int>(mark - 1));
}

bool release_vote::all_free(MPI_Comm comm) noexcept {
  const int mine = 0;
  int any_abandoned = 1;
  MPI_Request pending = MPI_REQUEST_NULL;
  if (MPI_Iallreduce(&mine, &any_abandoned, 1, MPI_INT, MPI_MAX, comm, &pending) != MPI_SUCCESS) return false;
  try {
    complete_by(pending, std::nullopt);
  } catch (...) {
    return false;
  }
  return any_abandoned == 0;
}

void release_vote::abandon(MPI_Comm comm) noexcept {
  if (abandoned_) return;
  abandoned_ = true;
  vote_ = 1;
  MPI_Iallreduce(&vote_, &result_, 1, MPI_INT, MPI_MAX, comm, &request_);
}

std::uint64_t enroll(MPI_Comm comm, std::shared_ptr<registered> thing) {
  auto& r = the_registry();
  std::lock_guard guard(r.mutex);
  if (r.keyval == MPI_KEYVAL_INVALID) {
    MPIPROC_CHECK(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, release_all, &r.keyval, nullptr));
    MPIPROC_CHECK(MPI_Comm_set_attr(MPI_COMM_SELF, r.keyval, nullptr));
  }
  const std::uint64_t id = r.next_id++;
  r.live.emplace(id, entry{comm, std::move(thing)});
  return id;
}

void withdraw(std::uint64_t id) noexcept {
  std::shared_ptr<registered> gone;  // dropped after the lock: its destructor may withdraw others
  auto& r = the_registry();
  std::lock_guard guard(r.mutex);
  if (const auto it = r.live.find(id); it != r.live.end()) {
    gone = std::move(it->second.thing);
    r.live.erase(it);
  }
}

void break_shared_state(MPI_Comm comm, int failed_rank) noexcept {
  std::vector<std::shared_ptr<registered>> matching;
  {
    auto& r = the_registry();
    std::lock_guard guard(r.mutex);
    for (const auto& [id, e] : r.live)
      if (e.comm == comm) matching.push_back(e.thing);
  }
  for (const auto& thing : matching) thing->poison(failed_rank);
}

bool finalize_begun() noexcept { return finalizing; }

bool mpi_finalizing() noexcept {
  if (finalizing) return true;
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

}  // namespace mpiproc::detail
