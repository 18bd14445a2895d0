#include "communicator_state.hpp"
#include "node_memory.hpp"
#include "registry.hpp"
#include "segment_ops.hpp"
#include "service_endpoint.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/shared_segment.hpp>
#include <mpiproc/error.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace mpiproc::detail {

using namespace segment_ops;
using namespace node_memory;

// The one-node path: every rank's memory mapped here, changed with CPU atomics.
struct shared_segment::state : registered {
  std::atomic<bool> broken{false};  // this rank broke it or saw a wait end broken
  bool released = false;
  std::shared_ptr<communicator_handles> comm_alive;  // keeps `comm` alive
  MPI_Comm comm = MPI_COMM_NULL;  // shared with the communicator's other objects
  MPI_Win window = MPI_WIN_NULL;  // where the anonymous memory could not be mapped
  std::byte* mapped = nullptr;    // every rank's memory, anonymous, mapped here
  std::size_t mapped_bytes = 0;
  std::vector<std::byte*> bases;  // each rank's memory (after its header) as mapped here; null if none
  release_vote vote;
  std::uint64_t enrolled = 0;

  // Each rank's header holds 8 sleeping places {change count, sleepers}; the word at offset o
  // uses place (o / 8) % 8, so that a change wakes only the ranks waiting on nearby words.
  static std::size_t place(std::size_t offset) { return (offset / 8) % places; }
  std::uint32_t* futex_word(int target, std::size_t offset) const {
    return reinterpret_cast<std::uint32_t*>(bases[target] - header_bytes) + 2 * place(offset);
  }
  std::uint32_t* waiter_count(int target, std::size_t offset) const { return futex_word(target, offset) + 1; }
  /// The broken word of a part's header (`base`: the part as mapped here).
  static std::atomic_ref<std::uint64_t> broken_mark(std::byte* base) {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base - header_bytes + broken_at));
  }

  /// Wakes whoever sleeps on the places [first, last) of `target`'s header.
  void wake_places(int target, std::size_t first, std::size_t last) const {
    for (std::size_t p = first; p < last; ++p) {
      if (std::atomic_ref<std::uint32_t>(*waiter_count(target, p * 8)).load() == 0) continue;
      std::atomic_ref<std::uint32_t>(*futex_word(target, p * 8)).fetch_add(1);
      futex_wake_all(futex_word(target, p * 8));
    }
  }

  void wake(int target, const request& r) const {
    if (r.kind != op_write) return wake_places(target, place(r.offset), place(r.offset) + 1);
    // A bulk write may span every place. A plain copy is not ordered before the sleepers' count
    // is read, so fence it as the atomic operations are.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wake_places(target, 0, places);
  }

  reply apply_here(int target, const request& r, const void* payload, void* result) {
    bool changed = false;
    const reply out = apply(bases[target], r, payload, result, changed);
    if (changed) wake(target, r);
    return out;
  }

  /// Spins briefly, then yields (the rank it waits for may need this core), as poller::for_memory
  /// paces it, then sleeps on a futex word that every change to the words it covers bumps while anyone sleeps.
  bool wait(int target, const request& r, const deadline& until) {
    const auto attempt = [&] { return apply_here(target, r, nullptr, nullptr).ok != 0; };
    const std::atomic_ref<std::uint64_t> marked = broken_mark(bases[target]);
    for (poller patience = poller::for_memory(); !patience.sleepy(); patience.pause()) {
      if (attempt()) return true;
      if (const std::uint64_t mark = marked.load()) fail_broken(broken, mark);
    }
    std::atomic_ref<std::uint32_t> sleepers(*waiter_count(target, r.offset));
    std::atomic_ref<std::uint32_t> changes(*futex_word(target, r.offset));
    sleepers.fetch_add(1);
    bool ok = false;
    std::uint64_t failed = 0;
    for (;;) {
      const std::uint32_t seen = changes.load();
      if (attempt()) {
        ok = true;
        break;
      }
      if ((failed = marked.load()) != 0) break;
      if (until && clock::now() >= *until) break;
      futex_wait(futex_word(target, r.offset), seen, until);
    }
    sleepers.fetch_sub(1);
    if (failed) fail_broken(broken, failed);
    return ok;
  }

  /// Breaks this segment for every rank (see break_shared_state): marks each part's header and
  /// wakes its sleepers; never throws.
  void poison(int failed_rank) noexcept override {
    if (released) return;
    broken = true;
    const std::uint64_t mark = static_cast<std::uint64_t>(failed_rank) + 1;
    for (std::size_t target = 0; target < bases.size(); ++target) {
      if (!bases[target]) continue;  // no memory there
      std::uint64_t none = 0;
      broken_mark(bases[target]).compare_exchange_strong(none, mark);
      wake_places(static_cast<int>(target), 0, places);
    }
  }

  void release() noexcept override {
    if (released) return;
    released = true;
    if (vote.abandoned() || !vote.all_free(comm)) return;  // a rank abandoned it: the memory stays to the end
    if (window != MPI_WIN_NULL) MPI_Win_free(&window);
    if (mapped) ::munmap(mapped, mapped_bytes);
    mapped = nullptr;
  }

  /// This rank leaves while an exception unwinds: it votes no without waiting for the others'
  /// votes (see release_vote); the registry keeps this state, and the vote's buffers, to the end.
  void abandon() noexcept {
    if (released || vote.abandoned()) return;
    broken = true;
    vote.abandon(comm);
  }
};

shared_segment::shared_segment(const communicator& owner, std::size_t bytes, const void* initial) {
  enter_construction(owner.native(), "a lock, queue or other shared object");  // before the transport's collective
  rank_ = owner.rank();
  if (owner.state().shared_state_transport() == transport::messages) {
    remote_ = std::make_unique<service_endpoint>(owner, bytes, initial, service_endpoint::handler{});
    for (int r = 0; r < owner.size(); ++r) sizes_.push_back(remote_->bytes(r));
    return;
  }
  map_on_node(owner, bytes, initial, false);
}

shared_segment::shared_segment(const communicator& owner, reserve_tag, std::size_t bytes) {
  enter_construction(owner.native(), "a shared dict");
  rank_ = owner.rank();
  const bool on_node = owner.state().shared_state_transport() == transport::shared_memory;
  map_on_node(owner, on_node && rank_ == 0 ? bytes : 0, nullptr, true);
}

void shared_segment::map_on_node(const communicator& owner, std::size_t bytes, const void* initial, bool reserve_only) {
  const auto parts = static_cast<std::size_t>(owner.size());
  local_ = std::make_shared<state>();
  state& s = *local_;
  // Its collectives need the objects' duplicate, but no tags: nothing is sent point to point.
  const object_channel channel = owner.state().new_object(0, "lock, queue or other shared object");
  s.comm_alive = channel.keep;
  s.comm = channel.comm;
  s.enrolled = enroll(owner.native(), local_);
  sizes_.resize(parts);
  const std::uint64_t mine = bytes;
  static_assert(sizeof(std::size_t) == sizeof(std::uint64_t));
  MPIPROC_CHECK(MPI_Allgather(&mine, 1, MPI_UINT64_T, sizes_.data(), 1, MPI_UINT64_T, s.comm));
  // Each rank's part: its header and bytes in whole cache lines, so that every part stays
  // aligned, one after another.
  const auto part_bytes = [](std::size_t n) { return n > 0 ? (n + header_bytes + 63) / 64 * 64 : 0; };
  std::size_t total = 0;
  for (const std::size_t n : sizes_) total += part_bytes(n);
  s.bases.assign(parts, nullptr);
  if (total > 0) s.mapped = map_anonymous(s.comm, rank_, total);
  if (s.mapped) {
    s.mapped_bytes = total;
    std::size_t offset = 0;
    for (std::size_t r = 0; r < parts; ++r) {
      if (sizes_[r] > 0) s.bases[r] = s.mapped + offset + header_bytes;
      offset += part_bytes(sizes_[r]);
    }
    if (bytes > 0 && initial) std::memcpy(s.bases[static_cast<std::size_t>(rank_)], initial, bytes);
  } else if (reserve_only) {
    std::fill(sizes_.begin(), sizes_.end(), 0);  // no memory: every access is refused
  } else if (total > 0) {
    std::byte* base = nullptr;
    const auto local = static_cast<MPI_Aint>(part_bytes(bytes));
    MPIPROC_CHECK(MPI_Win_allocate_shared(local, 1, MPI_INFO_NULL, s.comm, &base, &s.window));
    if (local > 0) std::memset(base, 0, static_cast<std::size_t>(local));
    if (local > 0 && initial) std::memcpy(base + header_bytes, initial, bytes);
    for (int r = 0; r < owner.size(); ++r) {
      MPI_Aint size = 0;
      int unit = 0;
      std::byte* mapped = nullptr;
      MPIPROC_CHECK(MPI_Win_shared_query(s.window, r, &size, &unit, &mapped));
      s.bases[r] = size > 0 ? mapped + header_bytes : nullptr;
    }
  }
  // Nobody may touch the memory before its owner has zeroed it.
  MPIPROC_CHECK(MPI_Barrier(s.comm));
}

shared_segment::~shared_segment() {
  if (!local_ || mpi_finalizing()) return;  // the endpoint ends itself; at MPI_Finalize the registry does
  // While an exception unwinds, this rank may be the only one here: the others' frees must not
  // wait for it.
  if (std::uncaught_exceptions() > 0)
    abandon();
  else
    release();
}

void shared_segment::abandon() noexcept {
  if (remote_)
    remote_->abandon();
  else
    local_->abandon();
}

void shared_segment::release() noexcept {
  if (remote_) return remote_->release();
  // An abandoned segment's vote may still be in flight: the registry keeps its state (and the
  // vote's buffers) until MPI_Finalize.
  if (local_->vote.abandoned()) return;
  withdraw(local_->enrolled);
  local_->release();
}

bool shared_segment::by_messages() const noexcept { return remote_ != nullptr; }
bool shared_segment::usable() const noexcept { return remote_ ? remote_->usable() : !local_->released; }
bool shared_segment::broken() const noexcept { return remote_ ? remote_->broken() : local_->broken.load(); }
int shared_segment::rank() const noexcept { return rank_; }
int shared_segment::size() const noexcept { return static_cast<int>(sizes_.size()); }
std::size_t shared_segment::bytes(int rank) const { return sizes_.at(static_cast<std::size_t>(rank)); }

void shared_segment::refuse(int target, const request& r) const {
  if (!usable())
    throw usage_error("mpiproc: shared state used after its communicator was released (the MPI environment ended)");
  if (target < 0 || target >= size())
    throw usage_error("mpiproc: shared state on rank " + std::to_string(target) + " of a communicator of " +
                      std::to_string(size()));
  throw usage_error("mpiproc: shared state access out of bounds (" + std::to_string(r.offset) + " on rank " +
                    std::to_string(target) + ")");
}

// On every operation, so kept to a few compares; the error's words are built in refuse().
inline void shared_segment::check(int target, const request& r) const {
  const std::uint64_t extent = (r.kind == op_read || r.kind == op_write) ? r.a : r.width;
  const bool fine = (local_ ? !local_->released : remote_->usable()) &&
                    static_cast<std::size_t>(target) < sizes_.size() &&
                    r.offset + extent <= sizes_[static_cast<std::size_t>(target)] && r.offset % r.width == 0;
  if (!fine) [[unlikely]]
    refuse(target, r);
}

inline reply shared_segment::apply_to(int target, const request& r, const void* payload, void* result) {
  check(target, r);
  return remote_ ? remote_->ask(target, r, payload, result) : local_->apply_here(target, r, payload, result);
}

inline bool shared_segment::wait_for(int target, const request& r, const deadline& until) {
  check(target, r);
  return remote_ ? remote_->wait(target, r, until) : local_->wait(target, r, until);
}

namespace {
request make(std::uint64_t kind, std::size_t offset, unsigned width, std::uint64_t a = 0, std::uint64_t b = 0,
             std::uint64_t c = 0) {
  if (width != 1 && width != 2 && width != 4 && width != 8)
    throw usage_error("mpiproc: atomic width must be 1, 2, 4 or 8 bytes");
  return {kind, width, offset, a, b, c};
}
}  // namespace

std::uint64_t shared_segment::load(int rank, std::size_t offset, unsigned width) {
  return apply_to(rank, make(op_load, offset, width)).value;
}
void shared_segment::store(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  apply_to(rank, make(op_store, offset, width, value));
}
std::uint64_t shared_segment::exchange(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  return apply_to(rank, make(op_exchange, offset, width, value)).value;
}
std::uint64_t shared_segment::fetch_add(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  return apply_to(rank, make(op_fetch_add, offset, width, value)).value;
}
void shared_segment::post_add(int rank, std::size_t offset, std::uint64_t value) {
  apply_to(rank, make(op_post_add, offset, 8, value));
}
bool shared_segment::compare_exchange(int rank, std::size_t offset, std::uint64_t& expected, std::uint64_t desired,
                                      unsigned width) {
  const reply out = apply_to(rank, make(op_compare_exchange, offset, width, expected, desired));
  expected = out.value;
  return out.ok != 0;
}
void shared_segment::raise_to(int rank, std::size_t offset, std::uint64_t value) {
  apply_to(rank, make(op_raise, offset, 8, value));
}
bool shared_segment::add_up_to(int rank, std::size_t offset, std::uint64_t amount, std::uint64_t limit) {
  return apply_to(rank, make(op_add_up_to, offset, 8, amount, limit)).ok != 0;
}
bool shared_segment::take(int rank, std::size_t offset, std::uint64_t amount) {
  return apply_to(rank, make(op_take, offset, 8, amount)).ok != 0;
}
bool shared_segment::wait_take(int rank, std::size_t offset, std::uint64_t amount, const deadline& until) {
  return wait_for(rank, make(op_wait_take, offset, 8, amount), until);
}
bool shared_segment::wait(int rank, std::size_t offset, std::uint64_t mask, wait_test test, std::uint64_t value,
                          const deadline& until) {
  return wait_for(rank, make(op_wait, offset, 8, mask, value, static_cast<std::uint64_t>(test)), until);
}

std::uint64_t* shared_segment::mapped_word(int rank, std::size_t offset) {
  if (remote_) return nullptr;
  const auto at = static_cast<std::size_t>(rank);
  if (at < local_->bases.size() && !local_->bases[at]) return nullptr;  // no memory there
  check(rank, make(op_load, offset, 8));
  return reinterpret_cast<std::uint64_t*>(local_->bases[static_cast<std::size_t>(rank)] + offset);
}

void shared_segment::throw_if_broken() {
  if (!local_) return;  // the service answers a broken segment's requests with the failure
  for (std::byte* base : local_->bases) {
    if (!base) continue;
    if (const std::uint64_t mark = state::broken_mark(base).load()) fail_broken(local_->broken, mark);
  }
}

void shared_segment::changed(int rank, std::size_t offset) {
  if (local_) local_->wake(rank, make(op_store, offset, 8));
}

void shared_segment::read(int rank, std::size_t offset, void* out, std::size_t bytes) {
  auto* to = static_cast<std::byte*>(out);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t piece = std::min(bytes - done, max_message);
    request r{op_read, 1, offset + done, piece, 0, 0};
    apply_to(rank, r, nullptr, to + done);
    done += piece;
  }
}

void shared_segment::write(int rank, std::size_t offset, const void* in, std::size_t bytes) {
  const auto* from = static_cast<const std::byte*>(in);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t piece = std::min(bytes - done, max_message);
    request r{op_write, 1, offset + done, piece, 0, 0};
    apply_to(rank, r, from + done);
    done += piece;
  }
}

}  // namespace mpiproc::detail
