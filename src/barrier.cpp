#include <mpiproc/barrier.hpp>
#include <mpiproc/error.hpp>

#include <string>

namespace mpiproc {

// The states of Python's Barrier, in one word that every change swaps whole. A round fills; its
// last arrival runs the action (releasing), then lets the round go (draining); the next round may
// only start filling once every call of this one has left, so a waiter's view of the word always
// concerns its own round. reset() with calls inside empties it through resetting; broken stays
// until reset().
namespace {
constexpr unsigned shift = 61;
constexpr std::uint64_t filling = 0, draining = 1, resetting = 2, broken_state = 3, releasing = 4;
constexpr std::uint64_t count_mask = (std::uint64_t{1} << shift) - 1;
// Nonzero in draining, resetting and broken: the round of the calls inside is over.
constexpr std::uint64_t over_mask = std::uint64_t{3} << shift;

std::uint64_t state_of(std::uint64_t word) { return word >> shift; }
std::uint64_t count_of(std::uint64_t word) { return word & count_mask; }
std::uint64_t make(std::uint64_t state, std::uint64_t count) { return state << shift | count; }

[[noreturn]] void throw_broken(const char* why) {
  throw broken_barrier_error(std::string("mpiproc::barrier: ") + why + "; reset() it to use it again");
}
}  // namespace

barrier::barrier(const communicator& comm) : barrier(comm, static_cast<std::uint64_t>(comm.size())) {}

barrier::barrier(const communicator& comm, std::uint64_t parties, std::function<void()> action,
                 std::optional<duration> timeout)
    : parties_(parties), action_(std::move(action)) {
  if (parties == 0) throw usage_error("mpiproc::barrier: needs at least one party");
  if (parties > count_mask) throw usage_error("mpiproc::barrier: at most 2^61 - 1 parties");
  if (timeout) default_timeout_ = std::chrono::ceil<detail::clock::duration>(*timeout);
  word_ = std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? 8 : 0);
}

std::uint64_t barrier::wait_until_steady(const detail::deadline& until) {
  // Enter: wait while the previous round drains (or resets, or runs its action), as Python does.
  std::uint64_t word = word_->load(0, 0);
  std::uint64_t index = 0;
  for (;;) {
    const std::uint64_t state = state_of(word);
    if (state == broken_state) throw_broken("broken (aborted, reset, timed out or its action threw)");
    if (state != filling) {
      word_->wait(0, 0, ~std::uint64_t{0}, detail::wait_test::not_equal, word, std::nullopt);
      word = word_->load(0, 0);
      continue;
    }
    index = count_of(word);
    const bool last = index + 1 == parties_;
    if (word_->compare_exchange(0, 0, word, make(last ? (action_ ? releasing : draining) : filling, index + 1))) break;
  }

  if (index + 1 == parties_) {
    if (action_) {
      try {
        action_();
      } catch (...) {
        break_barrier();
        leave();
        throw;
      }
      // Let the round go, unless abort() broke it meanwhile.
      for (word = word_->load(0, 0); state_of(word) == releasing;)
        if (word_->compare_exchange(0, 0, word, make(draining, count_of(word)))) break;
    }
    leave();
    return index;
  }

  if (!word_->wait(0, 0, over_mask, detail::wait_test::not_equal, 0, until)) {
    // Timed out: break the round if it is still filling; if its action runs, wait for it (in
    // Python the action holds the lock the timed-out waiter needs); if it ended, go with that.
    for (word = word_->load(0, 0);;) {
      const std::uint64_t state = state_of(word);
      if (state == filling) {
        if (!word_->compare_exchange(0, 0, word, make(broken_state, count_of(word)))) continue;
        leave();
        throw_broken("a wait timed out");
      }
      if (state != releasing) break;
      word_->wait(0, 0, over_mask, detail::wait_test::not_equal, 0, std::nullopt);
      word = word_->load(0, 0);
    }
  }
  // This call is still counted, so the state cannot have gone back to filling.
  const std::uint64_t state = state_of(word_->load(0, 0));
  leave();
  if (state == resetting) throw_broken("reset while this call waited");
  if (state != draining) throw_broken("broken while this call waited");
  return index;
}

void barrier::leave() {
  for (std::uint64_t word = word_->load(0, 0);;) {
    const std::uint64_t state = state_of(word), count = count_of(word) - 1;
    const bool last_out = count == 0 && (state == draining || state == resetting);
    if (word_->compare_exchange(0, 0, word, make(last_out ? filling : state, count))) return;
  }
}

void barrier::break_barrier() {
  for (std::uint64_t word = word_->load(0, 0); state_of(word) != broken_state;)
    if (word_->compare_exchange(0, 0, word, make(broken_state, count_of(word)))) return;
}

void barrier::abort() { break_barrier(); }

void barrier::reset() {
  for (std::uint64_t word = word_->load(0, 0);;) {
    const std::uint64_t state = state_of(word), count = count_of(word);
    std::uint64_t next = state;
    if (count == 0)
      next = filling;
    else if (state == filling || state == broken_state)
      next = resetting;  // the calls inside throw; the last one out empties it
    if (next == state || word_->compare_exchange(0, 0, word, make(next, count))) return;
  }
}

bool barrier::broken() { return state_of(word_->load(0, 0)) == broken_state; }

std::uint64_t barrier::n_waiting() {
  const std::uint64_t word = word_->load(0, 0);
  const std::uint64_t state = state_of(word);
  return state == filling || state == releasing ? count_of(word) : 0;
}

}  // namespace mpiproc
