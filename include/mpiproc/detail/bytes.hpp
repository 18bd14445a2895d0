#pragma once

// Values as bytes, for channels and shared containers that hold them between ranks: trivially
// copyable types as their own bytes (ranks are assumed to share one data layout), strings as their
// characters, every other type through Boost.Serialization (a binary archive).

#include <mpiproc/detail/transport.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/iostreams/device/array.hpp>
#include <boost/iostreams/device/back_inserter.hpp>
#include <boost/iostreams/stream.hpp>

#include <cstring>
#include <string>
#include <type_traits>

namespace mpiproc::detail {

template <class T>
void append_bytes(std::string& out, const T& value) {
  if constexpr (travels_raw<T>) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
  } else if constexpr (std::is_same_v<T, std::string>) {
    out.append(value);
  } else {
    boost::iostreams::stream<boost::iostreams::back_insert_device<std::string>> sink(out);
    {
      boost::archive::binary_oarchive archive(sink, boost::archive::no_header);
      archive << value;
    }
    sink.flush();
  }
}

template <class T>
std::string to_bytes(const T& value) {
  std::string out;
  append_bytes(out, value);
  return out;
}

template <class T>
T from_bytes(const char* data, std::size_t size) {
  if constexpr (travels_raw<T>) {
    if (size != sizeof(T)) throw usage_error("mpiproc: a value of " + std::to_string(size) + " bytes where " +
                                             std::to_string(sizeof(T)) + " were expected (the same type on every rank?)");
    T value;
    std::memcpy(static_cast<void*>(&value), data, sizeof(T));
    return value;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return std::string(data, size);
  } else {
    static_assert(std::is_default_constructible_v<T>, "values that go through Boost.Serialization need a default constructor");
    boost::iostreams::stream<boost::iostreams::array_source> source(data, size);
    boost::archive::binary_iarchive archive(source, boost::archive::no_header);
    T value;
    archive >> value;
    return value;
  }
}

template <class T>
T from_bytes(const std::string& bytes) {
  return from_bytes<T>(bytes.data(), bytes.size());
}

}  // namespace mpiproc::detail
