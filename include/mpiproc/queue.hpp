#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/queue_core.hpp>
#include <mpiproc/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace mpiproc {

/// How a queue is sized. On one node the items live on rank 0 in a ring of shared-memory slots: a
/// trivially copyable item takes one slot; any other item is serialized and takes as many slots
/// of `slot_bytes` as its bytes need. Over several nodes they live in a list in rank 0's memory,
/// as many as the capacity allows (the ring's sizes do not apply).
struct queue_options {
  /// Items the queue holds at most: put waits while it is full. 0: as many as the ring holds.
  std::uint64_t capacity = 0;
  /// Slots in the ring (0: the capacity for trivially copyable items, else at least 65,536 of
  /// them or 16,384 serialized slots). Even without a capacity, put waits while every slot is
  /// taken (rank 0 holds slots * (16 + item or slot bytes)).
  std::uint64_t slots = 0;
  /// Payload bytes per slot for serialized items.
  std::uint64_t slot_bytes = 240;
};

/// A first-in, first-out queue that every rank of a communicator puts to and gets from, like
/// multiprocessing.Queue. Items from one producer come out in the order it put them. close()
/// ends it for everyone: once the items put before are taken, get returns an empty optional on
/// every rank (no sentinel to pass around), and put is a usage_error.
///
/// Construction is collective; then each rank uses it on its own, one thread at a time. Waiting
/// ranks sleep rather than spin, and nothing waits for rank 0's user code. Movable, not copyable;
/// a moved-from queue is a usage_error to use.
template <class T>
class queue {
 public:
  /// Collective over `comm`.
  explicit queue(const communicator& comm, queue_options options = {}) : queue(comm, options, false) {}

  /// Appends a copy of `item`, waiting while the queue is full. usage_error after close(), and for
  /// an item larger than the ring's slots on one node (see queue_options): it could never go in.
  void put(const T& item) { put_bytes(item, std::nullopt, true); }
  /// Appends a copy of `item` if the queue has room now; false if it is full (it would wait).
  /// usage_error as put.
  bool try_put(const T& item) { return put_bytes(item, std::nullopt, false); }
  /// As try_put, but throws queue_full when the queue is full, as Python's put_nowait.
  void put_nowait(const T& item) {
    if (!try_put(item)) throw queue_full("mpiproc::queue: put_nowait on a full queue");
  }
  /// As put, but waits at most `timeout` for room: false if the queue stayed full that long
  /// (where Python's put(item, timeout=...) raises Full; put_nowait throws queue_full).
  template <class Rep, class Period>
  bool put_for(const T& item, const std::chrono::duration<Rep, Period>& timeout) {
    return put_bytes(item, detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout), true);
  }

  /// The oldest item, waiting until there is one; empty once the queue is closed and drained.
  std::optional<T> get() { return take(std::nullopt, true); }
  /// The oldest item if there is one now; empty otherwise (or once drained: see ended()).
  std::optional<T> try_get() { return take(std::nullopt, false); }
  /// The oldest item if there is one now; throws queue_empty otherwise (also once the queue is
  /// closed and drained: ended() tells), as Python's get_nowait.
  T get_nowait() {
    std::optional<T> item = take(std::nullopt, false);
    if (!item) throw queue_empty(ended() ? "mpiproc::queue: get_nowait on a queue closed and drained"
                                         : "mpiproc::queue: get_nowait on an empty queue");
    return std::move(*item);
  }
  /// As get(), but empty if no item came within `timeout` (ended() tells the two apart).
  template <class Rep, class Period>
  std::optional<T> get_for(const std::chrono::duration<Rep, Period>& timeout) {
    return take(detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout), true);
  }

  /// No more items: every get returns empty once those already put are taken. Any rank may close;
  /// closing again does nothing.
  void close() { core().close(); }
  bool closed() { return core().closed(); }
  /// Whether the queue is closed and every item has been taken.
  bool ended() { return core().ended(); }
  /// Items waiting, each counted once however many slots it takes (Python's qsize; already stale
  /// when it returns while other ranks use the queue).
  std::uint64_t size() { return core().size(); }
  bool empty() { return size() == 0; }
  /// Whether a put would wait now: size() has reached the capacity, or, without a capacity, every
  /// slot of the ring is taken (one node). Stale as size().
  bool full() { return core().full(); }

 protected:
  queue(const communicator& comm, const queue_options& options, bool joinable)
      : core_(detail::make_queue_core(comm, slots(options),
                                      detail::travels_raw<T> ? sizeof(T) : options.slot_bytes, options.capacity,
                                      joinable)) {}

  detail::queue_core& core() {
    if (!core_) throw usage_error("mpiproc::queue: used after it was moved from");
    return *core_;
  }

 private:
  static std::uint64_t slots(const queue_options& o) {
    if (o.slots) return o.slots;
    if (o.capacity && detail::travels_raw<T>) return o.capacity;
    return std::max<std::uint64_t>(o.capacity, detail::travels_raw<T> ? 65536 : 16384);
  }

  bool put_bytes(const T& item, const detail::deadline& until, bool wait) {
    detail::queue_core& c = core();
    const detail::encoded<T> bytes(item);
    return c.put(bytes.data(), bytes.size(), until, wait);
  }

  std::optional<T> take(const detail::deadline& until, bool wait) {
    detail::queue_core& c = core();
    std::optional<T> item(std::in_place);
    detail::decoder<T> value(*item);
    if (c.get([&](std::size_t n) { return value.place(n); }, until, wait) == detail::queue_core::outcome::item)
      value.finish();
    else
      item.reset();
    return item;
  }

  std::unique_ptr<detail::queue_core> core_;
};

}  // namespace mpiproc
