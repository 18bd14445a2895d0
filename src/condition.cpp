#include <mpiproc/condition.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace mpiproc {

namespace {
// Rank 0's words: the next ticket, then one wait slot per rank (0: not waiting). Every change is
// made with the condition's lock held, so notify sees a settled set of waiters.
constexpr std::size_t next_ticket = 0;
constexpr std::size_t slot(int rank) { return 8 + 8 * static_cast<std::size_t>(rank); }

std::size_t words_bytes(const communicator& comm) { return comm.rank() == 0 ? slot(comm.size()) : 0; }
}  // namespace

condition::condition(const communicator& comm)
    : own_lock_(std::make_unique<mutex>(comm)),
      lock_(own_lock_.get()),
      words_(std::make_unique<detail::shared_segment>(comm, words_bytes(comm))) {}

condition::condition(const communicator& comm, mutex& lock)
    : lock_(&lock), words_(std::make_unique<detail::shared_segment>(comm, words_bytes(comm))) {}

void condition::require_lock(const char* what) const {
  if (!lock_->held())
    throw usage_error(std::string("mpiproc::condition: ") + what + " needs the condition's lock held by this rank");
}

bool condition::wait_until_steady(const detail::deadline& until) {
  require_lock("wait()");
  const std::size_t mine = slot(words_->rank());
  // Tickets start at 1 and only grow: the lowest ticket in a slot is the longest waiting rank.
  const std::uint64_t ticket = words_->fetch_add(0, next_ticket, 1) + 1;
  words_->store(0, mine, ticket);
  lock_->unlock();
  bool woken = false;
  try {
    woken = words_->wait(0, mine, ~std::uint64_t{0}, detail::wait_test::equal, 0, until);
  } catch (...) {
    lock_->lock();
    throw;
  }
  lock_->lock();
  if (woken) return true;
  // Timed out. A notify may have chosen this rank between the timeout and the lock: then it was
  // woken after all (and that wake-up is not lost). Otherwise leave the waiters.
  if (words_->load(0, mine) == 0) return true;
  words_->store(0, mine, 0);
  return false;
}

void condition::notify(std::uint64_t n) {
  require_lock("notify()");
  if (n == 0) return;
  const int ranks = words_->size();
  std::vector<std::uint64_t> tickets(static_cast<std::size_t>(ranks));
  words_->read(0, slot(0), tickets.data(), tickets.size() * 8);  // one request on the messages path
  std::vector<std::pair<std::uint64_t, int>> waiting;
  for (int r = 0; r < ranks; ++r)
    if (tickets[static_cast<std::size_t>(r)] != 0) waiting.emplace_back(tickets[static_cast<std::size_t>(r)], r);
  const auto woken = static_cast<std::size_t>(std::min<std::uint64_t>(n, waiting.size()));
  std::partial_sort(waiting.begin(), waiting.begin() + static_cast<std::ptrdiff_t>(woken), waiting.end());
  for (std::size_t k = 0; k < woken; ++k) words_->store(0, slot(waiting[k].second), 0);
}

void condition::notify_all() { notify(~std::uint64_t{0}); }

}  // namespace mpiproc
