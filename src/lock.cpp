#include <mpiproc/error.hpp>
#include <mpiproc/lock.hpp>
#include <mpiproc/rlock.hpp>

namespace mpiproc {

namespace {
constexpr std::uint64_t one_ticket = std::uint64_t{1} << 32;
constexpr std::uint64_t serving_mask = 0xffff'ffffu;
std::uint32_t next_ticket(std::uint64_t word) { return static_cast<std::uint32_t>(word >> 32); }
std::uint32_t serving(std::uint64_t word) { return static_cast<std::uint32_t>(word & serving_mask); }
}  // namespace

mutex::mutex(const communicator& comm)
    : word_(std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? 8 : 0)) {}

void mutex::lock() {
  if (held_) throw usage_error("mpiproc::lock: this rank already holds the lock (an rlock can be taken again)");
  const std::uint64_t before = word_->fetch_add(0, 0, one_ticket);
  ticket_ = next_ticket(before);
  if (serving(before) != ticket_) word_->wait(0, 0, serving_mask, detail::wait_test::equal, ticket_, std::nullopt);
  held_ = true;
}

bool mutex::try_lock() {
  if (held_) return false;
  std::uint64_t seen = word_->load(0, 0);
  while (next_ticket(seen) == serving(seen))
    if (word_->compare_exchange(0, 0, seen, seen + one_ticket)) {
      ticket_ = next_ticket(seen);
      held_ = true;
      return true;
    }
  return false;
}

bool mutex::try_lock_until_steady(detail::clock::time_point until) {
  for (;;) {
    if (try_lock()) return true;
    if (held_ || detail::clock::now() >= until) return false;
    const std::uint64_t seen = word_->load(0, 0);
    if (next_ticket(seen) != serving(seen))
      word_->wait(0, 0, ~std::uint64_t{0}, detail::wait_test::not_equal, seen, until);
  }
}

void mutex::unlock() {
  if (!held_) throw usage_error("mpiproc::lock: unlock() by a rank that does not hold the lock");
  held_ = false;
  // Serve the next ticket; the half-word wraps without carrying into the ticket half.
  word_->post_add(0, 0, ticket_ == serving_mask ? 1 - one_ticket : 1);
}

void recursive_mutex::unlock() {
  if (depth_ == 0) throw usage_error("mpiproc::rlock: unlock() by a rank that does not hold the lock");
  if (--depth_ == 0) lock_.unlock();
}

}  // namespace mpiproc
