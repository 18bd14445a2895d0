#include <mpiproc/barrier.hpp>
#include <mpiproc/error.hpp>

namespace mpiproc {

barrier::barrier(const communicator& comm) : barrier(comm, static_cast<std::uint64_t>(comm.size())) {}

barrier::barrier(const communicator& comm, std::uint64_t parties) : parties_(parties) {
  if (parties == 0) throw usage_error("mpiproc::barrier: needs at least one party");
  arrivals_ = std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? 8 : 0);
}

std::uint64_t barrier::wait() {
  // Call k belongs to round k / parties, which ends when the count reaches the round's end: no
  // reset, so no race between a round's last arrival and the next round's first.
  const std::uint64_t arrival = arrivals_->fetch_add(0, 0, 1);
  const std::uint64_t round_end = (arrival / parties_ + 1) * parties_;
  arrivals_->wait(0, 0, ~std::uint64_t{0}, detail::wait_test::at_least, round_end, std::nullopt);
  return arrival % parties_;
}

}  // namespace mpiproc
