#include <mpiproc/event.hpp>

namespace mpiproc {

event::event(const communicator& comm)
    : word_(std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? 8 : 0)) {}

void event::set() {
  for (std::uint64_t seen = word_->load(0, 0); (seen & 1) == 0;)
    if (word_->compare_exchange(0, 0, seen, seen + 1)) return;
}

void event::clear() {
  for (std::uint64_t seen = word_->load(0, 0); (seen & 1) == 1;)
    if (word_->compare_exchange(0, 0, seen, seen + 1)) return;
}

bool event::is_set() { return (word_->load(0, 0) & 1) != 0; }

bool event::wait() { return wait_until_steady(std::nullopt); }

bool event::wait_until_steady(const detail::deadline& until) {
  const std::uint64_t seen = word_->load(0, 0);
  if (seen & 1) return true;
  return word_->wait(0, 0, ~std::uint64_t{0}, detail::wait_test::not_equal, seen, until);
}

}  // namespace mpiproc
