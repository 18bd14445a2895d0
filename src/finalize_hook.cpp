#include "finalize_hook.hpp"

#include <mpiproc/detail/check.hpp>

#include <atomic>
#include <map>
#include <mutex>

namespace mpiproc::detail {

namespace {

struct registry {
  std::mutex mutex;
  std::map<std::uint64_t, std::function<void()>> releases;
  std::uint64_t next_id = 0;
  int keyval = MPI_KEYVAL_INVALID;
};

registry& the_registry() {
  static registry r;
  return r;
}

std::atomic<bool> finalizing{false};

/// The delete callback of an attribute on MPI_COMM_SELF, which MPI_Finalize deletes first.
int run_releases(MPI_Comm, int, void*, void*) {
  finalizing = true;
  auto& r = the_registry();
  std::map<std::uint64_t, std::function<void()>> pending;
  {
    std::lock_guard guard(r.mutex);
    pending.swap(r.releases);
  }
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) it->second();
  return MPI_SUCCESS;
}

}  // namespace

std::uint64_t release_at_finalize(std::function<void()> release) {
  auto& r = the_registry();
  std::lock_guard guard(r.mutex);
  if (r.keyval == MPI_KEYVAL_INVALID) {
    MPIPROC_CHECK(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, run_releases, &r.keyval, nullptr));
    MPIPROC_CHECK(MPI_Comm_set_attr(MPI_COMM_SELF, r.keyval, nullptr));
  }
  const std::uint64_t id = r.next_id++;
  r.releases.emplace(id, std::move(release));
  return id;
}

void forget_at_finalize(std::uint64_t id) noexcept {
  auto& r = the_registry();
  std::lock_guard guard(r.mutex);
  r.releases.erase(id);
}

bool finalize_begun() noexcept { return finalizing; }

bool mpi_finalizing() noexcept {
  if (finalizing) return true;
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

}  // namespace mpiproc::detail
