#include "communicator_state.hpp"
#include "node_memory.hpp"
#include "registry.hpp"
#include "segment_ops.hpp"
#include "segment_service.hpp"

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
#include <future>
#include <string>
#include <vector>

namespace mpiproc::detail {

using namespace segment_ops;
using namespace node_memory;

struct shared_segment::state : registered {
  std::atomic<bool> broken{false};  // this rank broke it or saw a wait end broken
  bool remote = false;
  bool answers_calls = false;  // every rank's service answers call()s (and keeps some)
  bool released = false;
  std::shared_ptr<communicator_handles> comm_alive;  // keeps `comm` alive
  MPI_Comm comm = MPI_COMM_NULL;  // shared with the communicator's other objects, on tags of its own
  int tags = 0;                   // the first of them
  MPI_Win window = MPI_WIN_NULL;  // shared, where the anonymous memory could not be mapped
  std::byte* mapped = nullptr;    // shared: every rank's memory, anonymous, mapped here
  std::size_t mapped_bytes = 0;
  std::vector<std::byte*> bases;  // shared: each rank's memory (after its header) as mapped here
  std::vector<std::size_t> sizes;
  std::unique_ptr<std::byte[]> owned;  // messages: this rank's memory
  std::future<void> stopped;           // messages: the service let go of `owned`
  std::vector<char> posted_to;         // messages: ranks sent a post_add since their last reply
  std::uint64_t enrolled = 0;
  int rank = 0;
  int size = 1;

  void check_usable(int target, const request& r) const {
    if (released)
      throw usage_error("mpiproc: shared state used after its communicator was released (the MPI environment ended)");
    if (target < 0 || target >= size)
      throw usage_error("mpiproc: shared state on rank " + std::to_string(target) + " of a communicator of " +
                        std::to_string(size));
    if (r.kind == op_call) return;
    const std::uint64_t extent = (r.kind == op_read || r.kind == op_write) ? r.a : r.width;
    if (r.offset + extent > sizes[static_cast<std::size_t>(target)] || r.offset % r.width != 0)
      throw usage_error("mpiproc: shared state access out of bounds");
  }

  // Each rank's header holds 8 sleeping places {change count, sleepers}; the word at offset o
  // uses place (o / 8) % 8, so that a change wakes only the ranks waiting on nearby words.
  static std::size_t place(std::size_t offset) { return (offset / 8) % places; }
  std::uint32_t* futex_word(int target, std::size_t offset) const {
    return reinterpret_cast<std::uint32_t*>(bases[target] - header_bytes) + 2 * place(offset);
  }
  std::uint32_t* waiter_count(int target, std::size_t offset) const { return futex_word(target, offset) + 1; }

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

  reply call(int target, const request& r, const void* payload = nullptr, void* result = nullptr) {
    check_usable(target, r);
    if (!remote) {
      bool changed = false;
      const reply out = apply(bases[target], r, payload, result, changed);
      if (changed) wake(target, r);
      return out;
    }
    MPIPROC_CHECK(MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm));
    if (r.kind == op_write)
      MPIPROC_CHECK(MPI_Send(payload, static_cast<int>(r.a), MPI_BYTE, target, tags + write_payload_tag, comm));
    if (r.kind == op_post_add) {
      posted_to[target] = 1;
      return {};
    }
    reply out;
    receive(&out, sizeof out, target, tags + reply_tag);
    if (r.kind == op_read)
      MPIPROC_CHECK(MPI_Recv(result, static_cast<int>(r.a), MPI_BYTE, target, tags + read_payload_tag, comm, MPI_STATUS_IGNORE));
    posted_to[target] = 0;
    return out;
  }

  /// A blocking receive by polling (complete_by).
  void receive(void* out, std::size_t bytes, int source, int tag) {
    MPI_Request pending = MPI_REQUEST_NULL;
    MPIPROC_CHECK(MPI_Irecv(out, static_cast<int>(bytes), MPI_BYTE, source, tag, comm, &pending));
    complete_by(pending, std::nullopt);
  }

  /// Remembers that this rank saw the segment broken, and says so.
  [[noreturn]] void fail_broken(std::uint64_t mark) {
    broken = true;
    throw peer_failed(static_cast<int>(mark - 1));
  }

  bool wait(int target, const request& r, const deadline& until) {
    check_usable(target, r);
    return remote ? wait_remote(target, r, until) : wait_shared(target, r, until);
  }

  /// Spins briefly, then yields (the rank it waits for may need this core), as poller::for_memory
  /// paces it, then sleeps on a futex word that every change to the words it covers bumps while anyone sleeps.
  bool wait_shared(int target, const request& r, const deadline& until) {
    const auto attempt = [&] {
      bool changed = false;
      const reply out = apply(bases[target], r, nullptr, nullptr, changed);
      if (changed) wake(target, r);
      return out.ok != 0;
    };
    std::atomic_ref<std::uint64_t> broken(*reinterpret_cast<std::uint64_t*>(bases[target] - header_bytes + broken_at));
    for (poller patience = poller::for_memory(); !patience.sleepy(); patience.pause()) {
      if (attempt()) return true;
      if (const std::uint64_t mark = broken.load()) fail_broken(mark);
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
      if ((failed = broken.load()) != 0) break;
      if (until && clock::now() >= *until) break;
      futex_wait(futex_word(target, r.offset), seen, until);
    }
    sleepers.fetch_sub(1);
    if (failed) fail_broken(failed);
    return ok;
  }

  /// Breaks this segment for every rank (see break_shared_state); never throws.
  void poison(int failed_rank) noexcept override {
    if (released) return;
    broken = true;
    const std::uint64_t mark = static_cast<std::uint64_t>(failed_rank) + 1;
    for (int target = 0; target < size; ++target) {
      if (sizes[static_cast<std::size_t>(target)] == 0 && !answers_calls) continue;
      if (!remote) {
        std::byte* header = bases[static_cast<std::size_t>(target)] - header_bytes;
        std::uint64_t none = 0;
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(header + broken_at)).compare_exchange_strong(none, mark);
        wake_places(target, 0, places);
        continue;
      }
      request r;
      r.kind = op_break;
      r.a = mark;
      reply out;
      if (MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm) != MPI_SUCCESS) continue;
      MPI_Recv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, MPI_STATUS_IGNORE);
    }
  }

  /// The owner's service keeps the wait until it holds; at the deadline this rank cancels it, and
  /// the wait's answer says whether it held after all.
  bool wait_remote(int target, const request& r, const deadline& until) {
    MPIPROC_CHECK(MPI_Send(&r, sizeof r, MPI_BYTE, target, tags + request_tag, comm));
    reply out;
    MPI_Request pending = MPI_REQUEST_NULL;
    MPIPROC_CHECK(MPI_Irecv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, &pending));
    if (!complete_by(pending, until)) {
      request cancel;
      cancel.kind = op_cancel;
      reply ack;
      MPIPROC_CHECK(MPI_Send(&cancel, sizeof cancel, MPI_BYTE, target, tags + request_tag, comm));
      complete_by(pending, std::nullopt);
      receive(&ack, sizeof ack, target, tags + reply_tag);
    }
    posted_to[target] = 0;
    if (out.ok == broken_answer) fail_broken(out.value);
    return out.ok != 0;
  }

  /// Collective but never stranded: whether every rank frees the segment, decided by polling an
  /// allreduce in which a rank that left its scope by an exception (abandon()) says no. The ranks
  /// that say yes have all made their last request, so it also ends the use of the services.
  bool all_free() noexcept {
    const int mine = 0;
    int any_abandoned = 1;
    MPI_Request pending = MPI_REQUEST_NULL;
    if (MPI_Iallreduce(&mine, &any_abandoned, 1, MPI_INT, MPI_MAX, comm, &pending) != MPI_SUCCESS) return false;
    try {
      complete_by(pending, std::nullopt);
    } catch (...) {
      return false;
    }
    return any_abandoned == 0;
  }

  void release() noexcept override {
    if (released) return;
    released = true;
    if (remote && !abandoned) {
      // Every request of this rank has had its answer but the posted adds: one round trip each
      // makes sure they landed, then nobody sends to any service after the agreement.
      request sync;
      sync.kind = op_sync;
      for (int target = 0; target < size; ++target)
        if (posted_to[target]) {
          reply out;
          MPI_Send(&sync, sizeof sync, MPI_BYTE, target, tags + request_tag, comm);
          MPI_Recv(&out, sizeof out, MPI_BYTE, target, tags + reply_tag, comm, MPI_STATUS_IGNORE);
        }
    }
    // Once every rank has voted, nobody sends requests any more: this rank's service can stop
    // serving the segment either way. An abandoning rank stops it at MPI_Finalize.
    const bool everyone_frees = !abandoned && all_free();
    if (remote && owned) {
      request stop;
      stop.kind = op_stop;
      MPI_Send(&stop, sizeof stop, MPI_BYTE, rank, tags + request_tag, comm);
      stopped.wait();
    }
    if (!everyone_frees) return;  // a rank abandoned it: the memory stays to the end
    if (!remote && window != MPI_WIN_NULL) MPI_Win_free(&window);
    if (mapped) ::munmap(mapped, mapped_bytes);
    mapped = nullptr;
  }

  /// This rank leaves the segment while an exception unwinds: the other ranks may never reach a
  /// collective free, so it votes against freeing without waiting for their votes (their
  /// release() then keeps the memory too). The release registered for MPI_Finalize, which keeps
  /// this state and the vote's buffers alive, stops this rank's service for it then.
  void abandon() noexcept {
    if (released || abandoned) return;
    abandoned = true;
    broken = true;
    abandon_vote = 1;
    MPI_Iallreduce(&abandon_vote, &abandon_result, 1, MPI_INT, MPI_MAX, comm, &abandon_request);
  }

  bool abandoned = false;
  int abandon_vote = 0, abandon_result = 0;
  MPI_Request abandon_request = MPI_REQUEST_NULL;
};

shared_segment::shared_segment(const communicator& owner, std::size_t bytes, const void* initial, handler answer)
    : state_(std::make_shared<state>()) {
  enter_construction(owner.native(), "a lock, queue or other shared object");
  state& s = *state_;
  const object_channel channel = owner.state().new_object(tags_used, "lock, queue or other shared object");
  s.comm_alive = channel.keep;
  s.comm = channel.comm;
  s.tags = channel.first_tag;
  s.rank = owner.rank();
  s.size = owner.size();
  s.enrolled = enroll(owner.native(), state_);
  const auto parts = static_cast<std::size_t>(s.size);
  s.sizes.resize(parts);
  const std::uint64_t mine = bytes;
  MPIPROC_CHECK(MPI_Allgather(&mine, 1, MPI_UINT64_T, s.sizes.data(), 1, MPI_UINT64_T, s.comm));
  s.answers_calls = static_cast<bool>(answer);
  s.remote = owner.state().shared_state_transport() == transport::messages || s.answers_calls;
  s.posted_to.assign(parts, 0);
  if (s.remote) {
    int level = MPI_THREAD_SINGLE;
    MPIPROC_CHECK(MPI_Query_thread(&level));
    if (level < MPI_THREAD_MULTIPLE)
      throw usage_error("mpiproc: over several nodes, dynamic and guided schedules, locks, counters, values and the "
                        "other shared state need MPI_THREAD_MULTIPLE (an mpiproc::environment asks for it); initialize "
                        "MPI with it, or use block or cyclic schedules");
    if (bytes > 0 || answer) {
      s.owned.reset(new std::byte[std::max<std::size_t>(bytes, 1)]());
      if (initial) std::memcpy(s.owned.get(), initial, bytes);
      s.stopped = serve(s.comm, s.tags, s.owned.get(), std::move(answer));
    }
  } else {
    // Each rank's part: its header and bytes in whole cache lines, so that every part stays
    // aligned, one after another.
    const auto part_bytes = [](std::size_t n) { return n > 0 ? (n + header_bytes + 63) / 64 * 64 : 0; };
    std::size_t total = 0;
    for (const std::size_t n : s.sizes) total += part_bytes(n);
    s.bases.assign(parts, nullptr);
    if (total > 0) s.mapped = map_anonymous(s.comm, s.rank, total);
    if (s.mapped) {
      s.mapped_bytes = total;
      std::size_t offset = 0;
      for (std::size_t r = 0; r < parts; ++r) {
        if (s.sizes[r] > 0) s.bases[r] = s.mapped + offset + header_bytes;
        offset += part_bytes(s.sizes[r]);
      }
      if (bytes > 0 && initial) std::memcpy(s.bases[static_cast<std::size_t>(s.rank)], initial, bytes);
    } else if (total > 0) {
      std::byte* base = nullptr;
      const auto local = static_cast<MPI_Aint>(part_bytes(bytes));
      MPIPROC_CHECK(MPI_Win_allocate_shared(local, 1, MPI_INFO_NULL, s.comm, &base, &s.window));
      if (local > 0) std::memset(base, 0, static_cast<std::size_t>(local));
      if (local > 0 && initial) std::memcpy(base + header_bytes, initial, bytes);
      for (int r = 0; r < s.size; ++r) {
        MPI_Aint size = 0;
        int unit = 0;
        std::byte* mapped = nullptr;
        MPIPROC_CHECK(MPI_Win_shared_query(s.window, r, &size, &unit, &mapped));
        s.bases[r] = size > 0 ? mapped + header_bytes : nullptr;
      }
    }
  }
  // Nobody may touch the memory before its owner has zeroed it.
  MPIPROC_CHECK(MPI_Barrier(s.comm));
}

shared_segment::~shared_segment() {
  if (mpi_finalizing()) return;  // the release registered for MPI_Finalize frees it
  // While an exception unwinds, this rank may be the only one here: the others' frees must not
  // wait for it.
  if (std::uncaught_exceptions() > 0)
    abandon();
  else
    release();
}

void shared_segment::abandon() noexcept { state_->abandon(); }

void shared_segment::release() noexcept {
  // An abandoned segment's vote may still be in flight: the registry keeps its state (and the
  // vote's buffers) until MPI_Finalize, whose release stops this rank's service for it.
  if (state_->abandoned) return;
  withdraw(state_->enrolled);
  state_->release();
}

bool shared_segment::by_messages() const noexcept { return state_->remote; }
bool shared_segment::usable() const noexcept { return !state_->released; }
bool shared_segment::broken() const noexcept { return state_->broken; }
int shared_segment::rank() const noexcept { return state_->rank; }
int shared_segment::size() const noexcept { return state_->size; }
std::size_t shared_segment::bytes(int rank) const { return state_->sizes.at(static_cast<std::size_t>(rank)); }

namespace {
request make(std::uint64_t kind, std::size_t offset, unsigned width, std::uint64_t a = 0, std::uint64_t b = 0,
             std::uint64_t c = 0) {
  if (width != 1 && width != 2 && width != 4 && width != 8)
    throw usage_error("mpiproc: atomic width must be 1, 2, 4 or 8 bytes");
  return {kind, width, offset, a, b, c};
}
}  // namespace

std::uint64_t shared_segment::load(int rank, std::size_t offset, unsigned width) {
  return state_->call(rank, make(op_load, offset, width)).value;
}
void shared_segment::store(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  state_->call(rank, make(op_store, offset, width, value));
}
std::uint64_t shared_segment::exchange(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  return state_->call(rank, make(op_exchange, offset, width, value)).value;
}
std::uint64_t shared_segment::fetch_add(int rank, std::size_t offset, std::uint64_t value, unsigned width) {
  return state_->call(rank, make(op_fetch_add, offset, width, value)).value;
}
void shared_segment::post_add(int rank, std::size_t offset, std::uint64_t value) {
  state_->call(rank, make(op_post_add, offset, 8, value));
}
bool shared_segment::compare_exchange(int rank, std::size_t offset, std::uint64_t& expected, std::uint64_t desired,
                                      unsigned width) {
  const reply out = state_->call(rank, make(op_compare_exchange, offset, width, expected, desired));
  expected = out.value;
  return out.ok != 0;
}
void shared_segment::raise_to(int rank, std::size_t offset, std::uint64_t value) {
  state_->call(rank, make(op_raise, offset, 8, value));
}
bool shared_segment::add_up_to(int rank, std::size_t offset, std::uint64_t amount, std::uint64_t limit) {
  return state_->call(rank, make(op_add_up_to, offset, 8, amount, limit)).ok != 0;
}
bool shared_segment::take(int rank, std::size_t offset, std::uint64_t amount) {
  return state_->call(rank, make(op_take, offset, 8, amount)).ok != 0;
}
bool shared_segment::wait_take(int rank, std::size_t offset, std::uint64_t amount, const deadline& until) {
  return state_->wait(rank, make(op_wait_take, offset, 8, amount), until);
}
bool shared_segment::wait(int rank, std::size_t offset, std::uint64_t mask, wait_test test, std::uint64_t value,
                          const deadline& until) {
  return state_->wait(rank, make(op_wait, offset, 8, mask, value, static_cast<std::uint64_t>(test)), until);
}

std::uint64_t* shared_segment::mapped_word(int rank, std::size_t offset) {
  if (state_->remote) return nullptr;
  state_->check_usable(rank, make(op_load, offset, 8));
  return reinterpret_cast<std::uint64_t*>(state_->bases[static_cast<std::size_t>(rank)] + offset);
}

void shared_segment::changed(int rank, std::size_t offset) { state_->wake(rank, make(op_store, offset, 8)); }

std::optional<std::string> shared_segment::call(int rank, const std::string& question, const deadline& until) {
  if (question.size() > max_message) throw usage_error("mpiproc: a request of more than 1 GiB to shared state");
  state& s = *state_;
  const request r{op_call, 1, 0, question.size(), 0, 0};
  s.check_usable(rank, r);
  MPIPROC_CHECK(MPI_Send(&r, sizeof r, MPI_BYTE, rank, s.tags + request_tag, s.comm));
  MPIPROC_CHECK(MPI_Send(question.data(), static_cast<int>(question.size()), MPI_BYTE, rank, s.tags + write_payload_tag, s.comm));
  reply out;
  MPI_Request pending = MPI_REQUEST_NULL;
  MPIPROC_CHECK(MPI_Irecv(&out, sizeof out, MPI_BYTE, rank, s.tags + reply_tag, s.comm, &pending));
  const bool in_time = complete_by(pending, until);
  if (!in_time) {  // the answer, kept or not, comes before the cancel's acknowledgement
    request cancel;
    cancel.kind = op_cancel;
    MPIPROC_CHECK(MPI_Send(&cancel, sizeof cancel, MPI_BYTE, rank, s.tags + request_tag, s.comm));
    complete_by(pending, std::nullopt);
  }
  std::string answer(out.value, '\0');
  s.receive(answer.data(), answer.size(), rank, s.tags + read_payload_tag);
  if (!in_time) {
    reply ack;
    s.receive(&ack, sizeof ack, rank, s.tags + reply_tag);
  }
  s.posted_to[rank] = 0;
  if (out.ok == broken_answer) {
    std::uint64_t mark = 0;
    std::memcpy(&mark, answer.data(), std::min(answer.size(), sizeof mark));
    s.fail_broken(mark);
  }
  if (out.ok == key_error_answer) throw key_error(answer);
  if (out.ok == index_error_answer) throw index_error(answer);
  if (out.ok == failed_answer) throw error(answer);
  if (out.ok == timed_out_answer) return std::nullopt;
  return answer;
}

void shared_segment::read(int rank, std::size_t offset, void* out, std::size_t bytes) {
  auto* to = static_cast<std::byte*>(out);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t piece = std::min(bytes - done, max_message);
    request r{op_read, 1, offset + done, piece, 0, 0};
    state_->call(rank, r, nullptr, to + done);
    done += piece;
  }
}

void shared_segment::write(int rank, std::size_t offset, const void* in, std::size_t bytes) {
  const auto* from = static_cast<const std::byte*>(in);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t piece = std::min(bytes - done, max_message);
    request r{op_write, 1, offset + done, piece, 0, 0};
    state_->call(rank, r, from + done);
    done += piece;
  }
}

}  // namespace mpiproc::detail
