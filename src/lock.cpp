#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/error.hpp>
#include <mpiproc/lock.hpp>
#include <mpiproc/rlock.hpp>

#include <atomic>
#include <utility>

namespace mpiproc {

namespace {
// Two words on rank 0. At 0 (one node only): bit 0 = held, bit 1 = hand-off to the queue's head.
// At 8: the queue, as tickets: the next ticket (high half) and the head's (low half).
constexpr std::size_t state_at = 0, queue_at = 8, words_bytes = 16;
constexpr std::uint64_t held_bit = 1, handoff_bit = 2;
constexpr std::uint64_t one_ticket = std::uint64_t{1} << 32;
constexpr std::uint64_t head_mask = 0xffff'ffffu;
constexpr auto starving = std::chrono::milliseconds(1);
std::uint32_t next_ticket(std::uint64_t queue) { return static_cast<std::uint32_t>(queue >> 32); }
std::uint32_t head(std::uint64_t queue) { return static_cast<std::uint32_t>(queue & head_mask); }
/// What moves the queue's head on by one; the half-word wraps without carrying into the tickets.
std::uint64_t advance(std::uint32_t ticket) { return ticket == head_mask ? 1 - one_ticket : 1; }
}  // namespace

namespace detail {

/// How a lock is taken and given back over its words on rank 0. The lock picks one of two when it
/// is made, as its segment's transport says (the same on every rank), and keeps it: its methods
/// never choose again. The lock itself keeps track of whether this rank holds it.
class lock_algorithm {
 public:
  lock_algorithm(std::unique_ptr<shared_segment> words, std::size_t watched)
      : words_(std::move(words)), watched_(watched) {}
  virtual ~lock_algorithm() = default;
  lock_algorithm(const lock_algorithm&) = delete;
  lock_algorithm& operator=(const lock_algorithm&) = delete;

  /// Blocks until this rank holds the lock (it does not yet).
  virtual void lock() = 0;
  /// Takes the lock if nobody holds it or waits for it.
  virtual bool try_lock() = 0;
  /// Gives the lock back (this rank holds it).
  virtual void unlock() = 0;
  /// Whether a value of the watched word (the one try_lock takes) shows the lock free.
  virtual bool looks_free(std::uint64_t word) const = 0;

  std::uint64_t watched() { return words_->load(0, watched_); }
  /// Sleeps until the watched word no longer holds `seen`, or until the deadline.
  void wait_for_change(std::uint64_t seen, const deadline& until) {
    words_->wait(0, watched_, ~std::uint64_t{0}, wait_test::not_equal, seen, until);
  }
  bool broken() const noexcept { return words_->broken(); }

 protected:
  std::unique_ptr<shared_segment> words_;
  std::uint32_t ticket_ = 0;  // this rank's place in the queue, while it waits or holds the lock

 private:
  std::size_t watched_;
};

}  // namespace detail

namespace {

/// The messages path (across nodes): the owner's service keeps the ticket queue and answers the
/// waiters in ticket order, so every unlock hands the lock to the queue's head. A lock is one
/// round trip, an unlock one message that needs no answer.
class served_queue final : public detail::lock_algorithm {
 public:
  explicit served_queue(std::unique_ptr<detail::shared_segment> words) : lock_algorithm(std::move(words), queue_at) {}

  void lock() override {
    const std::uint64_t before = words_->fetch_add(0, queue_at, one_ticket);
    ticket_ = next_ticket(before);
    if (head(before) != ticket_) words_->wait(0, queue_at, head_mask, detail::wait_test::equal, ticket_, std::nullopt);
  }
  bool try_lock() override {
    for (std::uint64_t seen = watched(); looks_free(seen);)
      if (words_->compare_exchange(0, queue_at, seen, seen + one_ticket)) {
        ticket_ = next_ticket(seen);
        return true;
      }
    return false;
  }
  void unlock() override { words_->post_add(0, queue_at, advance(ticket_)); }
  bool looks_free(std::uint64_t queue) const override { return next_ticket(queue) == head(queue); }
};

/// Shared memory (one node): the state word holds the lock, and a rank that finds it free
/// takes it at once, even past the queue; the tickets only order the ranks that wait. Once the
/// queue's head has waited `starving`, it asks for a hand-off: newcomers then queue too, until a
/// short wait or an empty queue ends it.
class shared_word final : public detail::lock_algorithm {
 public:
  explicit shared_word(std::unique_ptr<detail::shared_segment> words)
      : lock_algorithm(std::move(words), state_at), state_(words_->mapped_word(0, state_at)) {}

  void lock() override {
    // Take a free lock at once (an atomic operation in place when uncontended), spinning a little
    // while it is held.
    std::uint64_t state = 0;
    if (words_->usable() && std::atomic_ref<std::uint64_t>(*state_).compare_exchange_strong(state, held_bit)) return;
    for (detail::poller patience = detail::poller::for_memory(); patience.spinning(); patience.pause()) {
      if (state & handoff_bit) break;
      if (!(state & held_bit) && words_->compare_exchange(0, state_at, state, state | held_bit)) return;
      if (state & held_bit) state = words_->load(0, state_at);
    }
    lock_in_queue();
  }
  bool try_lock() override {
    for (std::uint64_t seen = watched(); looks_free(seen);)
      if (words_->compare_exchange(0, state_at, seen, seen | held_bit)) return true;
    return false;
  }
  void unlock() override {
    if (words_->usable()) {
      std::atomic_ref<std::uint64_t>(*state_).fetch_sub(held_bit);  // the bit is set: clears it alone
      words_->changed(0, state_at);
    } else {
      words_->post_add(0, state_at, ~std::uint64_t{0});  // throws usage_error: released
    }
  }
  bool looks_free(std::uint64_t state) const override { return !(state & (held_bit | handoff_bit)); }

 private:
  void lock_in_queue() {
    const auto start = detail::clock::now();
    const std::uint64_t before = words_->fetch_add(0, queue_at, one_ticket);
    ticket_ = next_ticket(before);
    if (head(before) != ticket_) words_->wait(0, queue_at, head_mask, detail::wait_test::equal, ticket_, std::nullopt);
    // At the head: take the lock when free; after waiting too long, ask for it to be handed over
    // (newcomers then queue instead of taking it). The sleep ends at that point at the latest: a
    // holder that unlocks and relocks before this rank runs leaves the word as it was.
    for (std::uint64_t state = words_->load(0, state_at);;) {
      if (!(state & held_bit)) {
        if (words_->compare_exchange(0, state_at, state, state | held_bit)) break;
        continue;
      }
      const bool too_long = detail::clock::now() - start > starving;
      if (too_long && !(state & handoff_bit)) {
        words_->compare_exchange(0, state_at, state, state | handoff_bit);
        continue;
      }
      words_->wait(0, state_at, ~std::uint64_t{0}, detail::wait_test::not_equal, state,
                   too_long ? detail::deadline{} : detail::deadline{start + starving});
      state = words_->load(0, state_at);
    }
    const bool waited_long = detail::clock::now() - start > starving;
    // The next in line becomes the head. Hand-off ends with a short wait or an empty queue.
    const std::uint64_t queue = words_->fetch_add(0, queue_at, advance(ticket_));
    const bool queue_empty = next_ticket(queue) == static_cast<std::uint32_t>(ticket_ + 1);
    if (!waited_long || queue_empty)
      for (std::uint64_t state = held_bit | handoff_bit;
           (state & handoff_bit) && !words_->compare_exchange(0, state_at, state, state & ~handoff_bit);) {
      }
  }

  std::uint64_t* state_;  // the state word, mapped here
};

/// Collective: the lock's words, and the algorithm their transport calls for.
std::unique_ptr<detail::lock_algorithm> make_algorithm(const communicator& comm) {
  auto words = std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? words_bytes : 0);
  if (words->by_messages()) return std::make_unique<served_queue>(std::move(words));
  return std::make_unique<shared_word>(std::move(words));
}

}  // namespace

mutex::mutex(const communicator& comm) : algorithm_(make_algorithm(comm)) {}
mutex::~mutex() = default;
mutex::mutex(mutex&&) noexcept = default;
mutex& mutex::operator=(mutex&&) noexcept = default;

void mutex::lock() {
  if (held_) throw usage_error("mpiproc::lock: this rank already holds the lock (an rlock can be taken again)");
  algorithm_->lock();
  held_ = true;
}

bool mutex::try_lock() {
  if (held_) return false;
  held_ = algorithm_->try_lock();
  return held_;
}

bool mutex::locked() {
  if (held_) return true;
  return !algorithm_->looks_free(algorithm_->watched());
}

bool mutex::try_lock_until_steady(detail::clock::time_point until) {
  for (;;) {
    if (try_lock()) return true;
    if (held_ || detail::clock::now() >= until) return false;
    // Sleep until the word changes, unless it changed to free since the try.
    const std::uint64_t seen = algorithm_->watched();
    if (!algorithm_->looks_free(seen)) algorithm_->wait_for_change(seen, until);
  }
}

void mutex::unlock() {
  // After another rank's failure broke the lock, a guard that could not take it back (a condition
  // wait that ended broken) unwinds quietly.
  if (!held_ && algorithm_->broken()) return;
  if (!held_) throw usage_error("mpiproc::lock: unlock() by a rank that does not hold the lock");
  held_ = false;
  algorithm_->unlock();
}

void recursive_mutex::unlock() {
  if (depth_ == 0) throw usage_error("mpiproc::rlock: unlock() by a rank that does not hold the lock");
  if (--depth_ == 0) lock_.unlock();
}

}  // namespace mpiproc
