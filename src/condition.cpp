#include <mpiproc/condition.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <string>

namespace mpiproc {

namespace {
constexpr std::size_t begun = 0, woken = 8, timed_out = 16;
}

condition::condition(const communicator& comm)
    : own_lock_(std::make_unique<mutex>(comm)),
      lock_(own_lock_.get()),
      words_(std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? 24 : 0)) {}

condition::condition(const communicator& comm, mutex& lock)
    : lock_(&lock), words_(std::make_unique<detail::shared_segment>(comm.native(), comm.rank() == 0 ? 24 : 0)) {}

void condition::require_lock(const char* what) const {
  if (!lock_->held())
    throw usage_error(std::string("mpiproc::condition: ") + what + " needs the condition's lock held by this rank");
}

bool condition::wait_until_steady(const detail::deadline& until) {
  require_lock("wait()");
  const std::uint64_t ticket = words_->fetch_add(0, begun, 1);
  lock_->unlock();
  bool notified = false;
  try {
    notified = words_->wait(0, woken, ~std::uint64_t{0}, detail::wait_test::at_least, ticket + 1, until);
  } catch (...) {
    lock_->lock();
    throw;
  }
  lock_->lock();
  if (!notified) {
    // A notify may have come between the timeout and the relock; if not, the next notify wakes
    // one more, so that this ticket does not swallow a wakeup meant for a waiting rank.
    notified = words_->load(0, woken) > ticket;
    if (!notified) words_->fetch_add(0, timed_out, 1);
  }
  return notified;
}

void condition::notify(std::uint64_t n) {
  require_lock("notify()");
  const std::uint64_t waits = words_->load(0, begun);
  const std::uint64_t done = words_->load(0, woken);
  const std::uint64_t extra = words_->exchange(0, timed_out, 0);
  const std::uint64_t wanted = n > ~extra ? ~std::uint64_t{0} : n + extra;
  const std::uint64_t target = done + std::min(waits - done, wanted);
  if (target != done) words_->store(0, woken, target);
}

void condition::notify_all() {
  require_lock("notify_all()");
  words_->exchange(0, timed_out, 0);
  words_->store(0, woken, words_->load(0, begun));
}

}  // namespace mpiproc
