#include "chunk_counter.hpp"

#include <atomic>

namespace mpiproc::detail {

namespace {
constexpr int owner = 0;
constexpr std::size_t slot_bytes = 2 * sizeof(std::uint64_t);
}  // namespace

chunk_counter::chunk_counter(const communicator& comm)
    : slots_(std::make_unique<shared_segment>(comm, comm.rank() == owner ? slot_bytes : 0)),
      mapped_(slots_->mapped_word(owner, 0)),
      rank_(comm.rank()) {}

chunk_counter::~chunk_counter() { release(); }

void chunk_counter::release() noexcept {
  if (slots_) slots_->release();
  mapped_ = nullptr;
}

void chunk_counter::abandon() noexcept {
  if (slots_) slots_->abandon();
  mapped_ = nullptr;
}

void chunk_counter::begin_loop() {
  ++loop_;
  if (rank_ == owner) slots_->store(owner, loop_ % 2 * 8, 0);
}

std::uint64_t chunk_counter::next() {
  if (mapped_) return std::atomic_ref<std::uint64_t>(mapped_[slot() / 8]).fetch_add(1);
  return slots_->fetch_add(owner, slot(), 1);
}

void chunk_counter::cancel(std::uint64_t end) { slots_->raise_to(owner, slot(), end); }

}  // namespace mpiproc::detail
