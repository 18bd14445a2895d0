#include "queue_ring.hpp"

#include <mpiproc/error.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace mpiproc::detail {

namespace {
// Words on rank 0: positions reserved by producers (with the closed bit), positions claimed by
// consumers, two counts of permits, the items put and not yet claimed (an item may span several
// positions) and, for a joinable queue, the items put and not yet task_done; the slots follow, each
// {sequence, length, payload}.
constexpr std::size_t tail_at = 0, head_at = 8, ready_at = 16, space_at = 32, items_at = 40, unfinished_at = 48,
                      ring_at = 64;
constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;
// Closing adds this many permits, so every rank waiting or about to wait gets through to see it.
constexpr std::uint64_t closing_permits = std::uint64_t{1} << 48;
constexpr std::size_t slot_header = 16;

std::vector<std::byte> initial_words(std::size_t slots, std::size_t slot_bytes, std::uint64_t capacity) {
  std::vector<std::byte> memory(ring_at + slots * slot_bytes);
  auto word = [&](std::size_t at, std::uint64_t value) { std::memcpy(memory.data() + at, &value, 8); };
  word(space_at, capacity);
  for (std::size_t i = 0; i < slots; ++i) word(ring_at + i * slot_bytes, i);  // slot i awaits position i
  return memory;
}
}  // namespace

queue_ring::queue_ring(const communicator& comm, std::size_t slots, std::size_t payload, std::uint64_t capacity, bool joinable)
    : slots_(slots), payload_((payload + 7) / 8 * 8), capacity_(capacity), joinable_(joinable) {
  const std::vector<std::byte> memory =
      comm.rank() == 0 ? initial_words(slots_, slot_header + payload_, capacity) : std::vector<std::byte>();
  segment_ = std::make_unique<shared_segment>(comm, memory.size(), memory.data());
  // make_queue_core builds a ring only where the segment is shared memory: items are copied in place.
  std::uint64_t* base = segment_->mapped_word(0, 0);
  if (!base) throw error("mpiproc: a queue ring over messages (a bug: make_queue_core picks the mailbox there)");
  mapped_ = reinterpret_cast<std::byte*>(base);
}

std::size_t queue_ring::slot_at(std::uint64_t position) const {
  return ring_at + static_cast<std::size_t>(position % slots_) * (slot_header + payload_);
}

bool queue_ring::put(const void* data, std::size_t bytes, const deadline& until, bool wait) {
  const std::uint64_t need = std::max<std::uint64_t>(1, (bytes + payload_ - 1) / payload_);
  if (need > slots_)
    throw usage_error("mpiproc::queue: an item of " + std::to_string(bytes) + " bytes does not fit the queue's " +
                      std::to_string(slots_ * payload_) + " bytes of slots; make the queue with more ring bytes");
  std::uint64_t tail = segment_->load(0, tail_at);
  if (tail & closed_bit) throw usage_error("mpiproc::queue: put after close");
  if (capacity_) {  // close() lets every waiting put through, to see it refused
    if (wait ? !segment_->wait_take(0, space_at, 1, until) : !segment_->take(0, space_at, 1)) return false;
    tail = segment_->load(0, tail_at);
  }
  // A put that may not wait for good reserves only slots that consumers have claimed (a reserved
  // item must be written); a plain put reserves at once and waits on the slots themselves.
  const bool bounded = !wait || until;
  for (;;) {
    if (tail & closed_bit) throw usage_error("mpiproc::queue: put after close");
    if (bounded) {
      const std::uint64_t room = segment_->load(0, head_at) + slots_;
      if (tail + need > room) {
        if (!wait || !segment_->wait(0, head_at, ~std::uint64_t{0}, wait_test::at_least, tail + need - slots_, until)) {
          if (capacity_) segment_->post_add(0, space_at, 1);  // the permit taken above goes back
          return false;
        }
        tail = segment_->load(0, tail_at);
        continue;
      }
    }
    if (segment_->compare_exchange(0, tail_at, tail, tail + need)) break;
  }
  segment_->post_add(0, items_at, 1);
  if (joinable_) segment_->post_add(0, unfinished_at, 1);  // before any consumer can take it
  const auto* from = static_cast<const std::byte*>(data);
  for (std::uint64_t i = 0; i < need; ++i) {
    const std::uint64_t position = tail + i;
    const std::size_t slot = slot_at(position);
    // The slot is free once the consumer of the previous lap has read it (a full ring waits here).
    segment_->wait(0, slot, ~std::uint64_t{0}, wait_test::equal, position, std::nullopt);
    const std::size_t piece = std::min<std::size_t>(payload_, bytes - std::min<std::size_t>(bytes, i * payload_));
    if (i == 0) std::memcpy(mapped_ + slot + 8, &bytes, 8);
    std::memcpy(mapped_ + slot + slot_header, from + i * payload_, piece);
    segment_->store(0, slot, position + 1);  // published (orders the copy before it)
  }
  segment_->post_add(0, ready_at, 1);
  return true;
}

queue_core::outcome queue_ring::get(const std::function<void*(std::size_t bytes)>& place, const deadline& until,
                                    bool wait) {
  if (wait ? !segment_->wait_take(0, ready_at, 1, until) : !segment_->take(0, ready_at, 1)) return outcome::timeout;
  std::uint64_t head = segment_->load(0, head_at), need = 0, bytes = 0;
  for (;;) {
    const std::uint64_t tail = segment_->load(0, tail_at);
    if ((tail & closed_bit) && head >= (tail & ~closed_bit)) return outcome::ended;
    // Wait until the item at `head` is published (or the slot moved on: another consumer took it).
    const std::size_t slot = slot_at(head);
    segment_->wait(0, slot, ~std::uint64_t{0}, wait_test::at_least, head + 1, std::nullopt);
    std::memcpy(&bytes, mapped_ + slot + 8, 8);
    if (segment_->load(0, slot) == head + 1) {
      need = std::max<std::uint64_t>(1, (bytes + payload_ - 1) / payload_);
      if (segment_->compare_exchange(0, head_at, head, head + need)) {
        segment_->post_add(0, items_at, ~std::uint64_t{0});  // one item fewer
        break;
      }
    } else {
      head = segment_->load(0, head_at);
    }
  }
  auto* to = static_cast<std::byte*>(place(bytes));
  for (std::uint64_t i = 0; i < need; ++i) {
    const std::uint64_t position = head + i;
    const std::size_t slot = slot_at(position);
    if (i > 0) segment_->wait(0, slot, ~std::uint64_t{0}, wait_test::equal, position + 1, std::nullopt);
    const std::size_t piece = std::min<std::size_t>(payload_, bytes - std::min<std::size_t>(bytes, i * payload_));
    std::atomic_thread_fence(std::memory_order_acquire);
    std::memcpy(to + i * payload_, mapped_ + slot + slot_header, piece);
    segment_->store(0, slot, position + slots_);  // free for the producer of the next lap
  }
  if (capacity_) segment_->post_add(0, space_at, 1);
  return outcome::item;
}

void queue_ring::close() {
  std::uint64_t tail = segment_->load(0, tail_at);
  while (!(tail & closed_bit))
    if (segment_->compare_exchange(0, tail_at, tail, tail | closed_bit)) {
      // Every consumer, waiting or not, gets through to see the end, and every producer waiting
      // for room to see its put refused.
      segment_->post_add(0, ready_at, closing_permits);
      if (capacity_) segment_->post_add(0, space_at, closing_permits);
      return;
    }
}

bool queue_ring::closed() { return (segment_->load(0, tail_at) & closed_bit) != 0; }

bool queue_ring::ended() {
  const std::uint64_t tail = segment_->load(0, tail_at);
  return (tail & closed_bit) && segment_->load(0, head_at) >= (tail & ~closed_bit);
}

std::uint64_t queue_ring::size() {
  // Counted up after a producer reserves and down after a consumer claims, so it never goes below
  // zero; read as signed all the same.
  const auto items = static_cast<std::int64_t>(segment_->load(0, items_at));
  return items > 0 ? static_cast<std::uint64_t>(items) : 0;
}

bool queue_ring::full() {
  if (capacity_) return size() >= capacity_;
  const std::uint64_t tail = segment_->load(0, tail_at) & ~closed_bit;
  return tail - std::min(tail, segment_->load(0, head_at)) >= slots_;
}

void queue_ring::task_done() {
  if (!joinable_) throw usage_error("mpiproc::queue: task_done on a queue that is not a joinable_queue");
  std::uint64_t left = segment_->load(0, unfinished_at);
  for (;;) {
    if (left == 0)
      throw usage_error("mpiproc::joinable_queue: task_done() called more times than there were items put (as "
                        "Python's ValueError)");
    if (segment_->compare_exchange(0, unfinished_at, left, left - 1)) return;
  }
}

bool queue_ring::join(const deadline& until) {
  if (!joinable_) throw usage_error("mpiproc::queue: join on a queue that is not a joinable_queue");
  return segment_->wait(0, unfinished_at, ~std::uint64_t{0}, wait_test::equal, 0, until);
}

}  // namespace mpiproc::detail
