#include <mpiproc/error.hpp>
#include <mpiproc/semaphore.hpp>

#include <string>

namespace mpiproc {

semaphore::semaphore(const communicator& comm, std::uint64_t initial)
    : semaphore(comm, initial, std::numeric_limits<std::uint64_t>::max()) {}

semaphore::semaphore(const communicator& comm, std::uint64_t initial, std::uint64_t limit)
    : units_(std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? 8 : 0, &initial)),
      limit_(limit) {}

void semaphore::acquire() { acquire_until(std::nullopt); }

bool semaphore::try_acquire() { return units_->take(0, 0, 1); }

bool semaphore::acquire_until(const detail::deadline& until) { return units_->wait_take(0, 0, 1, until); }

void semaphore::release(std::uint64_t n) {
  if (!units_->add_up_to(0, 0, n, limit_))
    throw usage_error(limit_ == std::numeric_limits<std::uint64_t>::max()
                          ? "mpiproc::semaphore: release(" + std::to_string(n) + ") overflows the count"
                          : "mpiproc::bounded_semaphore: release(" + std::to_string(n) +
                                ") would exceed its start value " + std::to_string(limit_));
}

std::uint64_t semaphore::value() { return units_->load(0, 0); }

}  // namespace mpiproc
