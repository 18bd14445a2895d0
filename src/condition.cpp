#include <mpiproc/condition.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <string>

namespace mpiproc {

namespace {
constexpr std::size_t waiting = 0, wakeups = 8;
constexpr std::uint64_t minus_one = ~std::uint64_t{0};
}  // namespace

condition::condition(const communicator& comm)
    : own_lock_(std::make_unique<mutex>(comm)),
      lock_(own_lock_.get()),
      words_(std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? 16 : 0)) {}

condition::condition(const communicator& comm, mutex& lock)
    : lock_(&lock), words_(std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? 16 : 0)) {}

void condition::require_lock(const char* what) const {
  if (!lock_->held())
    throw usage_error(std::string("mpiproc::condition: ") + what + " needs the condition's lock held by this rank");
}

bool condition::wait_until_steady(const detail::deadline& until) {
  require_lock("wait()");
  words_->fetch_add(0, waiting, 1);
  lock_->unlock();
  bool woken = false;
  try {
    woken = words_->wait_take(0, wakeups, 1, until);
  } catch (...) {
    lock_->lock();
    throw;
  }
  // A wake-up may have come between the timeout and now: take it rather than leave it to a later
  // waiter (which would then wake without a notify of its own).
  if (!woken) woken = words_->take(0, wakeups, 1);
  words_->fetch_add(0, waiting, minus_one);
  lock_->lock();
  return woken;
}

void condition::notify(std::uint64_t n) {
  require_lock("notify()");
  const std::uint64_t waiters = words_->load(0, waiting);
  const std::uint64_t given = words_->load(0, wakeups);
  const std::uint64_t more = std::min(n, waiters > given ? waiters - given : 0);
  if (more > 0) words_->fetch_add(0, wakeups, more);
}

void condition::notify_all() { notify(~std::uint64_t{0}); }

}  // namespace mpiproc
