#pragma once

// The one encoding of a value into bytes and back, for everything that carries values between
// ranks (pipes, queues, shared dicts and lists, the collectives of map and map_reduce) or keeps them
// (checkpoints):
// - a trivially copyable type is its own bytes (ranks are assumed to share one data layout);
// - a std::string, or a std::vector of trivially copyable items other than bool, is its items' bytes;
// - any other type goes through Boost.Serialization's binary archive (without its header).
// A message of several values (a request to a container's owner, its answer, a checkpoint's
// results) puts them one after another: trivially copyable ones at their size, others with their
// length (u64) first (byte_writer, byte_reader).

#include <mpiproc/error.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/utility.hpp>
#include <boost/serialization/vector.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc::detail {

/// Whether T is its own bytes.
template <class T>
inline constexpr bool travels_raw = std::is_trivially_copyable_v<T>;

/// Whether T is its items' bytes (a string, a vector of trivially copyable items but bool, whose
/// vector packs bits); `item` is their type.
template <class T>
struct contiguous_items : std::false_type {};
template <class U, class A>
struct contiguous_items<std::vector<U, A>> : std::bool_constant<travels_raw<U> && !std::is_same_v<U, bool>> {
  using item = U;
};
template <class C, class Tr, class A>
struct contiguous_items<std::basic_string<C, Tr, A>> : std::true_type {
  using item = C;
};

namespace encoding {
template <class T>
struct unit_of {
  using type = std::byte;
};
template <class T>
  requires travels_raw<T>
struct unit_of<T> {
  using type = T;
};
template <class T>
  requires contiguous_items<T>::value
struct unit_of<T> {
  using type = typename contiguous_items<T>::item;
};
}  // namespace encoding

/// What T's bytes are a whole number of: T itself, its items, or bytes (a serialized T). A
/// transport counts in units (MPI's int counts then reach further than in bytes).
template <class T>
using encoding_unit = typename encoding::unit_of<T>::type;

namespace encoding {
/// The stream buffers Boost.Serialization's binary archives read and write through: straight into
/// a string and out of bytes in memory (boost::iostreams' streams cost a third more).
class append_buffer : public std::streambuf {
 public:
  explicit append_buffer(std::string& out) : out_(out) {}

 protected:
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }

 private:
  std::string& out_;
};

class read_buffer : public std::streambuf {
 public:
  read_buffer(const char* data, std::size_t size) {
    char* begin = const_cast<char*>(data);  // only read: a streambuf's get area is char*
    setg(begin, begin, begin + size);
  }
};

constexpr unsigned archive_flags = boost::archive::no_header | boost::archive::no_codecvt;
}  // namespace encoding

/// Appends the bytes of `value` to `out`.
template <class T>
void append_bytes(std::string& out, const T& value) {
  if constexpr (travels_raw<T>) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
  } else if constexpr (contiguous_items<T>::value) {
    out.append(reinterpret_cast<const char*>(value.data()), value.size() * sizeof(encoding_unit<T>));
  } else {
    encoding::append_buffer sink(out);
    boost::archive::binary_oarchive archive(sink, encoding::archive_flags);
    archive << value;
  }
}

template <class T>
std::string to_bytes(const T& value) {
  std::string out;
  append_bytes(out, value);
  return out;
}

/// The bytes of `value`, where it already holds them (a trivially copyable value, a string, a
/// vector of trivially copyable items) without a copy, so it must outlive this view; else
/// serialized into a buffer of its own.
template <class T>
class encoded {
 public:
  explicit encoded(const T& value) {
    if constexpr (travels_raw<T>) {
      bytes_ = {reinterpret_cast<const char*>(&value), sizeof(T)};
    } else if constexpr (contiguous_items<T>::value) {
      bytes_ = {reinterpret_cast<const char*>(value.data()), value.size() * sizeof(encoding_unit<T>)};
    } else {
      append_bytes(owned_, value);
      bytes_ = owned_;
    }
  }
  encoded(const encoded&) = delete;  // the view may point into owned_
  encoded& operator=(const encoded&) = delete;

  const char* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }
  /// How many encoding_unit<T> the bytes are.
  std::size_t units() const noexcept { return bytes_.size() / sizeof(encoding_unit<T>); }

 private:
  std::string owned_;
  std::string_view bytes_;
};

namespace encoding {
[[noreturn]] inline void wrong_size(std::size_t size, std::size_t expected, bool exactly) {
  throw usage_error("mpiproc: a value of " + std::to_string(size) + " bytes where " +
                    (exactly ? "" : "a multiple of ") + std::to_string(expected) +
                    " were expected (the same type on every rank?)");
}
}  // namespace encoding

/// Decodes a value of T straight into `into` where the transport can write its bytes there (a
/// trivially copyable value, a string, a vector of trivially copyable items), else through a buffer:
/// place(size) says where `size` bytes go, then finish() makes the value.
template <class T>
class decoder {
 public:
  explicit decoder(T& into) : into_(into) {}

  /// Where the `size` bytes of the value go; a usage_error if no T has that many.
  void* place(std::size_t size) {
    if constexpr (travels_raw<T>) {
      if (size != sizeof(T)) encoding::wrong_size(size, sizeof(T), true);
      return &into_;
    } else if constexpr (contiguous_items<T>::value) {
      if (size % sizeof(encoding_unit<T>) != 0) encoding::wrong_size(size, sizeof(encoding_unit<T>), false);
      into_.resize(size / sizeof(encoding_unit<T>));
      return into_.data();
    } else {
      buffer_.resize(size);
      return buffer_.data();
    }
  }
  /// Once the bytes are in place: makes the value from them.
  void finish() {
    if constexpr (!travels_raw<T> && !contiguous_items<T>::value) {
      static_assert(std::is_default_constructible_v<T>,
                    "values that go through Boost.Serialization need a default constructor");
      encoding::read_buffer source(buffer_.data(), buffer_.size());
      boost::archive::binary_iarchive archive(source, encoding::archive_flags);
      archive >> into_;
    }
  }

 private:
  T& into_;
  std::string buffer_;  // a serialized value's bytes
};

/// Decodes the bytes of a T into `into`, reusing its storage where it can (a vector keeps its
/// items' room: decoding into a fresh one of megabytes costs a page fault per 4 KiB, more than the
/// decoding itself).
template <class T>
void decode_into(T& into, const char* data, std::size_t size) {
  decoder<T> in(into);
  if constexpr (travels_raw<T> || contiguous_items<T>::value) {
    void* at = in.place(size);
#pragma GCC diagnostic push  // GCC 12 takes a moved-in string's short buffer for uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    if (size) std::memcpy(at, data, size);
#pragma GCC diagnostic pop
  } else {
    encoding::read_buffer source(data, size);
    boost::archive::binary_iarchive archive(source, encoding::archive_flags);
    archive >> into;
  }
}

template <class T>
T from_bytes(const char* data, std::size_t size) {
  static_assert(std::is_default_constructible_v<T>, "a decoded value is made from its default");
  T value{};
  decode_into(value, data, size);
  return value;
}

template <class T>
T from_bytes(std::string_view bytes) {
  return from_bytes<T>(bytes.data(), bytes.size());
}

/// Appends `value` to a message of several values: its bytes, with their length (u64) first unless
/// T is its own bytes (and so of a fixed length).
template <class T>
void append_field(std::string& out, const T& value) {
  if constexpr (travels_raw<T>) {
    append_bytes(out, value);
  } else {
    const std::size_t at = out.size();
    out.append(sizeof(std::uint64_t), '\0');
    append_bytes(out, value);
    const std::uint64_t length = out.size() - at - sizeof(std::uint64_t);
    std::memcpy(out.data() + at, &length, sizeof length);
  }
}

/// Writes a message of several values (append_field), as the requests and answers of shared
/// containers are.
class byte_writer {
 public:
  byte_writer() = default;
  /// Room for `capacity` bytes from the start (fewer copies as the message grows).
  explicit byte_writer(std::size_t capacity) { out_.reserve(capacity); }
  template <class T>
  byte_writer& put(const T& value) {
    append_field(out_, value);
    return *this;
  }
  /// A number as a u64.
  byte_writer& number(std::uint64_t n) { return put(n); }
  /// Bytes as they are (with their length first).
  byte_writer& bytes(std::string_view b) {
    put(static_cast<std::uint64_t>(b.size()));
    out_.append(b);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

/// Reads a message that byte_writer (or append_field) wrote, in the same order; an error (never a
/// read past the end) if it is shorter than its fields say.
class byte_reader {
 public:
  /// Reads (and keeps) `in`.
  explicit byte_reader(std::string&& in) : owned_(std::move(in)), in_(owned_) {}
  /// Reads bytes that the caller keeps until the reader is done.
  explicit byte_reader(std::string_view in) : in_(in) {}
  byte_reader(const byte_reader&) = delete;  // the view may point into owned_
  byte_reader& operator=(const byte_reader&) = delete;

  template <class T>
  T get() {
    if constexpr (travels_raw<T>) {
      return from_bytes<T>(take(sizeof(T)));
    } else {
      return from_bytes<T>(take(get<std::uint64_t>()));
    }
  }
  std::uint64_t number() { return get<std::uint64_t>(); }
  std::string bytes() { return std::string(take(number())); }
  /// As bytes(), but a view into the message (valid while it is).
  std::string_view bytes_view() { return take(number()); }
  /// Whether every byte has been read.
  bool done() const noexcept { return at_ == in_.size(); }

 private:
  std::string_view take(std::uint64_t n) {
    if (in_.size() - at_ < n) throw error("mpiproc: a malformed message between ranks (a bug)");
    const std::string_view out = in_.substr(at_, n);
    at_ += n;
    return out;
  }

  std::string owned_;
  std::string_view in_;
  std::size_t at_ = 0;  // what is read
};

}  // namespace mpiproc::detail
