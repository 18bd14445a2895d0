#pragma once

// The operations on a shared_segment's words, as one request each: applied in place to mapped
// shared memory, or sent as they are to the owner's service thread, which applies them the same way.

#include <mpiproc/detail/shared_segment.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mpiproc::detail::segment_ops {

/// One operation; the messages path sends it as it is.
struct request {
  std::uint64_t kind = 0, width = 8, offset = 0, a = 0, b = 0, c = 0;
};

enum : std::uint64_t {
  op_load, op_store, op_exchange, op_fetch_add, op_post_add, op_compare_exchange, op_raise, op_add_up_to, op_take,
  op_wait, op_wait_take, op_read, op_write, op_cancel, op_sync, op_break, op_stop, op_call, op_post_call
};
// The messages path's tags, as offsets from the first of the segment's own. Payloads get a tag per
// direction: a rank's client and service threads both receive payloads from the same peer, and one
// tag would let a read's data land in a write's receive.
constexpr int request_tag = 0, reply_tag = 1, write_payload_tag = 2, read_payload_tag = 3, tags_used = 4;
constexpr std::uint64_t broken_answer = 2;  // a wait's answer (ok) when the segment broke
// A call's answer (ok) when its handler threw (an error, a key_error or an index_error), or when
// it was kept waiting past its deadline.
constexpr std::uint64_t failed_answer = 3, key_error_answer = 4, index_error_answer = 5, timed_out_answer = 6;
constexpr std::size_t max_message = std::size_t{1} << 30;

struct reply {
  std::uint64_t value = 0, ok = 1;
};

static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "shared state needs lock-free 64-bit atomics, which work across processes");

/// Atomic operations that may change the word (when they succeed).
inline bool modifies(std::uint64_t kind) {
  return kind == op_store || kind == op_exchange || kind == op_fetch_add || kind == op_post_add ||
         kind == op_compare_exchange || kind == op_raise || kind == op_add_up_to || kind == op_take ||
         kind == op_wait_take;
}

inline bool passes(std::uint64_t word, const request& r) {
  const std::uint64_t masked = word & r.a;
  switch (static_cast<wait_test>(r.c)) {
    case wait_test::equal: return masked == r.b;
    case wait_test::not_equal: return masked != r.b;
    case wait_test::at_least: return masked >= r.b;
  }
  return false;
}

template <class U>
reply apply_atomic(std::byte* at, const request& r) {
  std::atomic_ref<U> word(*reinterpret_cast<U*>(at));
  switch (r.kind) {
    case op_load: return {word.load(), 1};
    case op_store: word.store(static_cast<U>(r.a)); return {};
    case op_exchange: return {word.exchange(static_cast<U>(r.a)), 1};
    case op_fetch_add:
    case op_post_add: return {word.fetch_add(static_cast<U>(r.a)), 1};
    case op_compare_exchange: {
      U expected = static_cast<U>(r.a);
      const bool ok = word.compare_exchange_strong(expected, static_cast<U>(r.b));
      return {expected, ok ? 1u : 0u};
    }
    default: break;
  }
  // The rest work on 8-byte words only.
  std::atomic_ref<std::uint64_t> word64(*reinterpret_cast<std::uint64_t*>(at));
  std::uint64_t seen = word64.load();
  switch (r.kind) {
    case op_raise:
      while (seen < r.a && !word64.compare_exchange_weak(seen, r.a)) {
      }
      return {seen, seen < r.a ? 1u : 0u};
    case op_add_up_to:
      for (;;) {
        if (r.a > r.b || seen > r.b - r.a) return {seen, 0};
        if (word64.compare_exchange_weak(seen, seen + r.a)) return {seen, 1};
      }
    case op_take:
    case op_wait_take:
      for (;;) {
        if (seen < r.a) return {seen, 0};
        if (word64.compare_exchange_weak(seen, seen - r.a)) return {seen, 1};
      }
    case op_wait: return {seen, passes(seen, r) ? 1u : 0u};
    default: return {0, 0};
  }
}

/// Applies `r` at `data` (the owner's memory); `payload` is what a write writes, `result` where a
/// read reads to (both given for those). Sets `changed` when memory may have changed.
inline reply apply(std::byte* data, const request& r, const void* payload, void* result, bool& changed) {
  std::byte* at = data + r.offset;
  changed = false;
  if (r.kind == op_read) {
    if (result) std::memcpy(result, at, r.a);
    return {};
  }
  if (r.kind == op_write) {
    if (payload) std::memcpy(at, payload, r.a);
    changed = true;
    return {};
  }
  reply out;
  switch (r.width) {
    case 1: out = apply_atomic<std::uint8_t>(at, r); break;
    case 2: out = apply_atomic<std::uint16_t>(at, r); break;
    case 4: out = apply_atomic<std::uint32_t>(at, r); break;
    default: out = apply_atomic<std::uint64_t>(at, r); break;
  }
  changed = modifies(r.kind) && out.ok;
  return out;
}

}  // namespace mpiproc::detail::segment_ops
