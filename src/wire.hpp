#pragma once

// The requests and answers that shared containers exchange with their owners' service: numbers
// and byte strings packed one after another.

#include <mpiproc/error.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <cstddef>
#include <utility>

namespace mpiproc::detail {

class wire_writer {
 public:
  wire_writer& number(std::uint64_t n) {
    out_.append(reinterpret_cast<const char*>(&n), sizeof n);
    return *this;
  }
  wire_writer& bytes(std::string_view b) {
    number(b.size());
    out_.append(b);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class wire_reader {
 public:
  explicit wire_reader(std::string in) : in_(std::move(in)) {}
  std::uint64_t number() {
    std::uint64_t n = 0;
    need(sizeof n);
#pragma GCC diagnostic push  // GCC 12 takes a moved-in string's short buffer for uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    std::memcpy(&n, in_.data() + at_, sizeof n);
#pragma GCC diagnostic pop
    at_ += sizeof n;
    return n;
  }
  std::string bytes() {
    const std::uint64_t n = number();
    need(n);
    std::string b = in_.substr(at_, n);
    at_ += n;
    return b;
  }

 private:
  void need(std::uint64_t n) const {
    if (in_.size() - at_ < n) throw error("mpiproc: a malformed message between ranks (a bug)");
  }
  std::string in_;
  std::size_t at_ = 0;  // what is read
};

}  // namespace mpiproc::detail
