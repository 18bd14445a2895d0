#include <mpiproc/detail/breakable.hpp>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mpiproc::detail {

namespace {
struct registered {
  MPI_Comm comm;
  std::weak_ptr<breakable> thing;
};

std::mutex& live_mutex() {
  static std::mutex m;
  return m;
}

/// Everything breakable alive in this process, dead entries dropped; hold live_mutex().
std::vector<registered>& live() {
  static std::vector<registered> things;
  std::erase_if(things, [](const registered& r) { return r.thing.expired(); });
  return things;
}
}  // namespace

peer_failed::peer_failed(int rank)
    : error("rank " + std::to_string(rank) + " failed while this rank waited on shared state"), rank_(rank) {}

void register_breakable(MPI_Comm comm, std::weak_ptr<breakable> thing) {
  std::lock_guard guard(live_mutex());
  live().push_back({comm, std::move(thing)});
}

void break_shared_state(MPI_Comm comm, int failed_rank) noexcept {
  std::vector<std::shared_ptr<breakable>> matching;
  {
    std::lock_guard guard(live_mutex());
    for (const registered& r : live())
      if (auto thing = r.thing.lock(); thing && r.comm == comm) matching.push_back(std::move(thing));
  }
  for (const auto& thing : matching) thing->poison(failed_rank);
}

}  // namespace mpiproc::detail
