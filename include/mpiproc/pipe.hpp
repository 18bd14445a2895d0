#pragma once

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/pipe_channel.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/error.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <vector>

namespace mpiproc {

/// Which ends of a pipe send: both (duplex), or only the first rank (one_way).
enum class pipe_mode { duplex, one_way };

namespace detail {
/// A contiguous buffer of trivially copyable items (a string, a vector, an array, a span...), for
/// the byte calls.
template <class R>
concept byte_buffer = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                      std::is_trivially_copyable_v<std::ranges::range_value_t<R>>;
/// One whose items can be written.
template <class R>
concept writable_byte_buffer =
    byte_buffer<R> && !std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>>;
}  // namespace detail

/// A connection between two ranks, like multiprocessing.Pipe: what one end sends, the other
/// receives, in order. When an end closes (or is destroyed), the other end's recv returns an empty
/// optional once it has everything that was sent before: the end of stream, where Python raises
/// EOFError.
///
/// T travels in the one encoding (detail/bytes.hpp): trivially copyable T as its bytes, strings and
/// vectors of trivially copyable items as their elements, any other T through Boost.Serialization. Construction is collective over the
/// communicator; the two ranks get the ends, every other rank an object that only says so
/// (is_end() false). An end is for one thread at a time. Movable, not copyable (moving an end
/// keeps it open; assigning over an end closes it first); a moved-from pipe is a usage_error to use.
///
/// send_bytes/recv_bytes/recv_bytes_into carry raw bytes on the same stream, as Python's Connection
/// does (pipe<> for a pipe of bytes only). Sending to an end that has closed is a usage_error (Python's
/// BrokenPipeError), whether its end of stream was received already or comes while a large message waits.
template <class T = std::string>
class pipe {
 public:
  /// Collective: ranks `first` and `second` of `comm` become the two ends. One way, only `first`
  /// sends. Throws usage_error unless they are two different ranks of `comm`.
  pipe(const communicator& comm, int first, int second, pipe_mode mode = pipe_mode::duplex)
      : channel_(comm, first, second, mode == pipe_mode::duplex) {}

  /// Whether this rank is one of the two ends.
  bool is_end() const { return channel_.is_end(); }
  /// The other end's rank.
  int peer() const { return channel_.peer(); }
  bool can_send() const { return channel_.can_send(); }
  bool can_recv() const { return channel_.can_recv(); }

  /// Sends a copy of `value`. Returns once `value` may change again: small messages at once, large
  /// ones once the other end receives them. usage_error at the receiving end of a one-way pipe, after
  /// close(), and once the other end is closed (seen before sending, or while a large message waits).
  void send(const T& value) {
    const detail::encoded<T> bytes(value);
    channel_.send(bytes.data(), bytes.units(), detail::raw_type<detail::encoding_unit<T>>());
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
    using unit = detail::encoding_unit<T>;
    detail::decoder<T> value(into);
    if constexpr (detail::travels_raw<T>) {  // of a known size: received at once, without a probe
      return channel_.receive_fixed(value.place(sizeof(T)), 1, detail::raw_type<T>());
    } else {
      if (!channel_.receive_sized(detail::raw_type<unit>(),
                                  [&](std::size_t count) { return value.place(count * sizeof(unit)); }))
        return false;
      value.finish();
      return true;
    }
  }

  /// Sends `size` bytes at `data` as one message, as they are (no serialization), like Python's
  /// Connection.send_bytes. Same rules as send (usage_error at the receiving end of a one-way pipe,
  /// after close, or once the other end is closed); usage_error for a null `data` with a size.
  void send_bytes(const void* data, std::size_t size) {
    if (!data && size) throw usage_error("mpiproc: pipe send_bytes from a null pointer");
    channel_.send(data, size, MPI_BYTE);
  }
  /// Sends bytes [offset, offset + size) of `buffer` (a string, a vector or array of trivially
  /// copyable items, a span...; offset and size count bytes, size defaults to the rest), as Python's
  /// send_bytes(buffer, offset, size). usage_error if the range passes the buffer's end (Python's
  /// ValueError).
  template <class Buffer>
    requires detail::byte_buffer<const Buffer&> && (!std::is_array_v<Buffer>)
  void send_bytes(const Buffer& buffer, std::size_t offset = 0, std::optional<std::size_t> size = std::nullopt) {
    send_range(std::ranges::data(buffer), std::ranges::size(buffer) * sizeof(std::ranges::range_value_t<const Buffer&>),
               offset, size);
  }
  /// A string literal, without its terminating zero.
  template <std::size_t N>
  void send_bytes(const char (&text)[N], std::size_t offset = 0, std::optional<std::size_t> size = std::nullopt) {
    send_range(text, N > 0 ? N - 1 : 0, offset, size);
  }

  /// The next message as bytes (one sent by send_bytes, or the bytes of one sent by send), like
  /// Python's recv_bytes; empty at the end of stream. With `maxlength`, a longer message throws
  /// buffer_too_short and stays unread, to be received with a larger limit (Python raises OSError
  /// and the connection is no longer usable).
  std::optional<std::string> recv_bytes(std::optional<std::size_t> maxlength = std::nullopt) {
    std::optional<std::string> bytes(std::in_place);
    if (!channel_.receive_sized(MPI_BYTE, [&](std::size_t count) -> void* {
          if (maxlength && count > *maxlength)
            throw buffer_too_short("mpiproc: pipe recv_bytes: a message of " + std::to_string(count) +
                                   " bytes, longer than maxlength " + std::to_string(*maxlength) +
                                   " (it stays unread)");
          bytes->resize(count);
          return bytes->data();
        }))
      bytes.reset();
    return bytes;
  }
  /// Receives the next message into the `size` bytes at `buffer` and returns its length, like
  /// Python's recv_bytes_into; empty at the end of stream. A message longer than `size` throws
  /// buffer_too_short and stays unread, to be received into a larger buffer or with recv_bytes
  /// (where Python's BufferTooShort carries the message, already taken).
  std::optional<std::size_t> recv_bytes_into(void* buffer, std::size_t size) {
    if (!buffer && size) throw usage_error("mpiproc: pipe recv_bytes_into a null pointer");
    std::size_t length = 0;
    if (!channel_.receive_sized(MPI_BYTE, [&](std::size_t count) -> void* {
          if (count > size)
            throw buffer_too_short("mpiproc: pipe recv_bytes_into: a message of " + std::to_string(count) +
                                   " bytes for " + std::to_string(size) + " bytes of buffer (it stays unread)");
          length = count;
          return buffer;
        }))
      return std::nullopt;
    return length;
  }
  /// The same into `buffer` (a string, a vector of trivially copyable items, a span...) from byte
  /// `offset` on, as Python's recv_bytes_into(buffer, offset); the buffer keeps its size.
  /// usage_error if offset passes its end (Python's ValueError). A C array takes the pointer form
  /// (array, its size) or std::span(array).
  template <class Buffer>
    requires detail::writable_byte_buffer<Buffer&> && (!std::is_array_v<Buffer>)
  std::optional<std::size_t> recv_bytes_into(Buffer& buffer, std::size_t offset = 0) {
    const std::size_t bytes = std::ranges::size(buffer) * sizeof(std::ranges::range_value_t<Buffer&>);
    if (offset > bytes)
      throw usage_error("mpiproc: pipe recv_bytes_into at offset " + std::to_string(offset) + " of a buffer of " +
                        std::to_string(bytes) + " bytes");
    return recv_bytes_into(reinterpret_cast<std::byte*>(std::ranges::data(buffer)) + offset, bytes - offset);
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
  bool closed() const { return channel_.closed(); }

 private:
  void send_range(const void* data, std::size_t bytes, std::size_t offset, std::optional<std::size_t> size) {
    if (offset > bytes || (size && *size > bytes - offset))
      throw usage_error("mpiproc: pipe send_bytes of bytes [" + std::to_string(offset) + ", " +
                        (size ? std::to_string(offset + *size) : std::string("end")) + ") of a buffer of " +
                        std::to_string(bytes) + " bytes");
    send_bytes(static_cast<const std::byte*>(data) + offset, size ? *size : bytes - offset);
  }

  detail::pipe_channel channel_;
};

}  // namespace mpiproc
