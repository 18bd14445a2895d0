#include <mpiproc/error.hpp>
#include <mpiproc/lock.hpp>
#include <mpiproc/rlock.hpp>

#include <atomic>

namespace mpiproc {

namespace {
constexpr std::size_t state_at = 0, queue_at = 8;
constexpr std::uint64_t held_bit = 1, handoff_bit = 2;
constexpr std::uint64_t one_ticket = std::uint64_t{1} << 32;
constexpr std::uint64_t head_mask = 0xffff'ffffu;
constexpr auto starving = std::chrono::milliseconds(1);
std::uint32_t next_ticket(std::uint64_t queue) { return static_cast<std::uint32_t>(queue >> 32); }
std::uint32_t head(std::uint64_t queue) { return static_cast<std::uint32_t>(queue & head_mask); }
/// What moves the queue's head on by one; the half-word wraps without carrying into the tickets.
std::uint64_t advance(std::uint32_t ticket) { return ticket == head_mask ? 1 - one_ticket : 1; }
}  // namespace

mutex::mutex(const communicator& comm)
    : word_(std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? 16 : 0)),
      state_(word_->mapped_word(0, state_at)) {}

void mutex::lock() {
  if (held_) throw usage_error("mpiproc::lock: this rank already holds the lock (an rlock can be taken again)");
  if (word_->by_messages()) {
    // The owner's service keeps the queue: one round trip, then it answers in ticket order.
    const std::uint64_t before = word_->fetch_add(0, queue_at, one_ticket);
    ticket_ = next_ticket(before);
    if (head(before) != ticket_) word_->wait(0, queue_at, head_mask, detail::wait_test::equal, ticket_, std::nullopt);
    held_ = true;
    return;
  }
  // One node: take a free lock at once (an atomic operation in place when uncontended), spinning a
  // little while it is held.
  std::uint64_t state = 0;
  if (word_->usable() && std::atomic_ref<std::uint64_t>(*state_).compare_exchange_strong(state, held_bit)) {
    held_ = true;
    return;
  }
  for (int spin = 0; spin < 100; ++spin) {
    if (state & handoff_bit) break;
    if (!(state & held_bit) && word_->compare_exchange(0, state_at, state, state | held_bit)) {
      held_ = true;
      return;
    }
    if (state & held_bit) {
      detail::cpu_relax();
      state = word_->load(0, state_at);
    }
  }
  lock_in_queue();
}

void mutex::lock_in_queue() {
  const auto start = detail::clock::now();
  const std::uint64_t before = word_->fetch_add(0, queue_at, one_ticket);
  ticket_ = next_ticket(before);
  if (head(before) != ticket_) word_->wait(0, queue_at, head_mask, detail::wait_test::equal, ticket_, std::nullopt);
  // At the head: take the lock when free; after waiting too long, ask for it to be handed over
  // (newcomers then queue instead of taking it). The sleep ends at that point at the latest: a
  // holder that unlocks and relocks before this rank runs leaves the word as it was.
  for (std::uint64_t state = word_->load(0, state_at);;) {
    if (!(state & held_bit)) {
      if (word_->compare_exchange(0, state_at, state, state | held_bit)) break;
      continue;
    }
    const bool too_long = detail::clock::now() - start > starving;
    if (too_long && !(state & handoff_bit)) {
      word_->compare_exchange(0, state_at, state, state | handoff_bit);
      continue;
    }
    word_->wait(0, state_at, ~std::uint64_t{0}, detail::wait_test::not_equal, state,
                too_long ? detail::deadline{} : detail::deadline{start + starving});
    state = word_->load(0, state_at);
  }
  held_ = true;
  const bool waited_long = detail::clock::now() - start > starving;
  // The next in line becomes the head. Hand-off ends with a short wait or an empty queue.
  const std::uint64_t queue = word_->fetch_add(0, queue_at, advance(ticket_));
  const bool queue_empty = next_ticket(queue) == static_cast<std::uint32_t>(ticket_ + 1);
  if (!waited_long || queue_empty)
    for (std::uint64_t state = held_bit | handoff_bit;
         (state & handoff_bit) && !word_->compare_exchange(0, state_at, state, state & ~handoff_bit);) {
    }
}

bool mutex::try_lock() {
  if (held_) return false;
  // Across nodes the queue word, on one node the state word: free means nobody holds or awaits it.
  const bool queue = word_->by_messages();
  const std::size_t at = queue ? queue_at : state_at;
  for (std::uint64_t seen = word_->load(0, at); looks_free(seen);)
    if (word_->compare_exchange(0, at, seen, queue ? seen + one_ticket : seen | held_bit)) {
      if (queue) ticket_ = next_ticket(seen);
      held_ = true;
      return true;
    }
  return false;
}

bool mutex::locked() {
  if (held_) return true;
  return !looks_free(word_->load(0, word_->by_messages() ? queue_at : state_at));
}

bool mutex::looks_free(std::uint64_t word) const {
  return word_->by_messages() ? next_ticket(word) == head(word) : !(word & (held_bit | handoff_bit));
}

bool mutex::try_lock_until_steady(detail::clock::time_point until) {
  const std::size_t at = word_->by_messages() ? queue_at : state_at;
  for (;;) {
    if (try_lock()) return true;
    if (held_ || detail::clock::now() >= until) return false;
    // Sleep until the word changes, unless it changed to free since the try.
    const std::uint64_t seen = word_->load(0, at);
    if (!looks_free(seen)) word_->wait(0, at, ~std::uint64_t{0}, detail::wait_test::not_equal, seen, until);
  }
}

void mutex::unlock() {
  // After another rank's failure broke the lock, a guard that could not take it back (a condition
  // wait that ended broken) unwinds quietly.
  if (!held_ && word_->broken()) return;
  if (!held_) throw usage_error("mpiproc::lock: unlock() by a rank that does not hold the lock");
  held_ = false;
  if (word_->by_messages())
    word_->post_add(0, queue_at, advance(ticket_));
  else if (word_->usable()) {
    std::atomic_ref<std::uint64_t>(*state_).fetch_sub(held_bit);  // the bit is set: clears it alone
    word_->changed(0, state_at);
  } else {
    word_->post_add(0, state_at, ~std::uint64_t{0});  // throws usage_error: released
  }
}

void recursive_mutex::unlock() {
  if (depth_ == 0) throw usage_error("mpiproc::rlock: unlock() by a rank that does not hold the lock");
  if (--depth_ == 0) lock_.unlock();
}

}  // namespace mpiproc
