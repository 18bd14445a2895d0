#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/pipe_channel.hpp>
#include <mpiproc/detail/transport.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace mpiproc {

/// Which ends of a pipe send: both (duplex), or only the first rank (one_way).
enum class pipe_mode { duplex, one_way };

namespace detail {
template <class T>
struct contiguous_items : std::false_type {};
template <class U, class A>
struct contiguous_items<std::vector<U, A>> : std::bool_constant<travels_raw<U> && !std::is_same_v<U, bool>> {
  using item = U;
};
template <>
struct contiguous_items<std::string> : std::true_type {
  using item = char;
};
}  // namespace detail

/// A connection between two ranks, like multiprocessing.Pipe: what one end sends, the other
/// receives, in order. When an end closes (or is destroyed), the other end's recv returns an empty
/// optional once it has everything that was sent before: the end of stream, where Python raises
/// EOFError.
///
/// Trivially copyable T travels as its bytes, strings and vectors of trivially copyable items as
/// their elements, any other T through Boost.Serialization. Construction is collective over the
/// communicator; the two ranks get the ends, every other rank an object that only says so
/// (is_end() false). An end is for one thread at a time.
template <class T>
class pipe {
 public:
  /// Collective: ranks `first` and `second` of `comm` become the two ends. One way, only `first`
  /// sends. Throws usage_error unless they are two different ranks of `comm`.
  pipe(const communicator& comm, int first, int second, pipe_mode mode = pipe_mode::duplex)
      : channel_(comm, first, second, mode == pipe_mode::duplex) {}

  /// Whether this rank is one of the two ends.
  bool is_end() const noexcept { return channel_.is_end(); }
  /// The other end's rank.
  int peer() const noexcept { return channel_.peer(); }
  bool can_send() const noexcept { return channel_.can_send(); }
  bool can_recv() const noexcept { return channel_.can_recv(); }

  /// Sends a copy of `value`. Returns once `value` may change again: small messages at once, large
  /// ones once the other end receives them. Throws if the other end closed while a message waited.
  void send(const T& value) {
    if constexpr (detail::travels_raw<T>) {
      channel_.send(&value, 1, detail::raw_type<T>());
    } else if constexpr (detail::contiguous_items<T>::value) {
      using item = typename detail::contiguous_items<T>::item;
      channel_.send(value.data(), value.size(), detail::raw_type<item>());
    } else {
      const std::string bytes = detail::to_bytes(value);
      channel_.send(bytes.data(), bytes.size(), MPI_BYTE);
    }
  }

  /// The next message; empty at the end of stream (the other end closed and everything it sent
  /// has been received). Waits until one comes.
  std::optional<T> recv() {
    std::optional<T> value(std::in_place);
    if (!recv(*value)) value.reset();
    return value;
  }

  /// Receives the next message into `into` (reusing its memory); false at the end of stream.
  bool recv(T& into) {
    if constexpr (detail::travels_raw<T>) {
      return channel_.receive_fixed(&into, 1, detail::raw_type<T>());
    } else if constexpr (detail::contiguous_items<T>::value) {
      using item = typename detail::contiguous_items<T>::item;
      return channel_.receive_sized(detail::raw_type<item>(), [&](std::size_t count) -> void* {
        into.resize(count);
        return into.data();
      });
    } else {
      std::string bytes;
      if (!channel_.receive_sized(MPI_BYTE, [&](std::size_t count) -> void* {
            bytes.resize(count);
            return bytes.data();
          }))
        return false;
      into = detail::from_bytes<T>(bytes);
      return true;
    }
  }

  /// Whether a message (or the end of stream) waits to be received, waiting up to `timeout`
  /// for one (zero: just look; the default: as long as it takes).
  template <class Rep = long, class Period = std::ratio<1>>
  bool poll(std::chrono::duration<Rep, Period> timeout = std::chrono::duration<Rep, Period>::max()) {
    using namespace std::chrono;
    detail::deadline until;
    if (timeout < duration_cast<duration<Rep, Period>>(hours(24 * 365)))
      until = detail::clock::now() + duration_cast<detail::clock::duration>(timeout);
    return channel_.poll(until);
  }

  /// Ends this side: the other end's recv returns empty after what was sent. Using this end
  /// afterwards is a usage_error; closing again does nothing.
  void close() { channel_.close(); }
  bool closed() const noexcept { return channel_.closed(); }

 private:
  detail::pipe_channel channel_;
};

}  // namespace mpiproc
