#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/queue_core.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

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
/// ranks sleep rather than spin, and nothing waits for rank 0's user code.
template <class T>
class queue {
 public:
  /// Collective over `comm`.
  explicit queue(const communicator& comm, queue_options options = {})
      : core_(detail::make_queue_core(comm.native(), slots(options),
                                      detail::travels_raw<T> ? sizeof(T) : options.slot_bytes, options.capacity)) {}

  /// Appends a copy of `item`, waiting while the queue is full. usage_error after close().
  void put(const T& item) {
    if constexpr (detail::travels_raw<T>) {
      core_->put(&item, sizeof(T));
    } else {
      const std::string bytes = detail::to_bytes(item);
      core_->put(bytes.data(), bytes.size());
    }
  }

  /// The oldest item, waiting until there is one; empty once the queue is closed and drained.
  std::optional<T> get() { return take(std::nullopt, true); }
  /// The oldest item if there is one now; empty otherwise (or once drained: see ended()).
  std::optional<T> try_get() { return take(std::nullopt, false); }
  /// As get(), but empty if no item came within `timeout` (ended() tells the two apart).
  template <class Rep, class Period>
  std::optional<T> get_for(const std::chrono::duration<Rep, Period>& timeout) {
    return take(detail::clock::now() + std::chrono::ceil<detail::clock::duration>(timeout), true);
  }

  /// No more items: every get returns empty once those already put are taken. Any rank may close;
  /// closing again does nothing.
  void close() { core_->close(); }
  bool closed() { return core_->closed(); }
  /// Whether the queue is closed and every item has been taken.
  bool ended() { return core_->ended(); }
  /// Items waiting (already stale when it returns while other ranks use the queue).
  std::uint64_t size() { return core_->size(); }
  bool empty() { return size() == 0; }

 private:
  static std::uint64_t slots(const queue_options& o) {
    if (o.slots) return o.slots;
    if (o.capacity && detail::travels_raw<T>) return o.capacity;
    return std::max<std::uint64_t>(o.capacity, detail::travels_raw<T> ? 65536 : 16384);
  }

  std::optional<T> take(const detail::deadline& until, bool wait) {
    std::optional<T> item;
    if constexpr (detail::travels_raw<T>) {
      item.emplace();
      if (core_->get([&](std::size_t) -> void* { return &*item; }, until, wait) != detail::queue_core::outcome::item)
        item.reset();
    } else {
      std::string bytes;
      if (core_->get([&](std::size_t n) -> void* {
            bytes.resize(n);
            return bytes.data();
          },
                    until, wait) == detail::queue_core::outcome::item)
        item = detail::from_bytes<T>(bytes);
    }
    return item;
  }

  std::unique_ptr<detail::queue_core> core_;
};

}  // namespace mpiproc
