#pragma once

#include <mpiproc/error.hpp>

#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

namespace mpiproc {

/// An integer type a range can run over: any integral type but bool.
template <class T>
concept index_type = std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool>;

/// The half-open integer range [first, last), like Python's range(first, last).
/// Its size must fit in std::int64_t, so that any index arithmetic on it is exact.
template <index_type T>
class range {
 public:
  using value_type = T;
  using size_type = std::int64_t;

  /// The empty range.
  constexpr range() = default;

  /// Throws usage_error if last < first, or if last - first does not fit in std::int64_t.
  constexpr range(T first, T last) : first_(first), last_(last) {
    if (last < first)
      throw usage_error("mpiproc::range: last (" + std::to_string(last) + ") is below first (" + std::to_string(first) +
                        "); a range is [first, last) with first <= last");
    // Unsigned arithmetic is exact modulo 2^64, and the true difference is non-negative here.
    const auto width = static_cast<std::uint64_t>(last) - static_cast<std::uint64_t>(first);
    if (width > static_cast<std::uint64_t>(std::numeric_limits<size_type>::max()))
      throw usage_error("mpiproc::range: [" + std::to_string(first) + ", " + std::to_string(last) +
                        ") holds more than 2^63 - 1 items; split it into smaller ranges");
  }

  constexpr T first() const noexcept { return first_; }
  constexpr T last() const noexcept { return last_; }
  constexpr size_type size() const noexcept {
    return static_cast<size_type>(static_cast<std::uint64_t>(last_) - static_cast<std::uint64_t>(first_));
  }
  constexpr bool empty() const noexcept { return first_ == last_; }

  /// The item at position `offset` (0 <= offset <= size()).
  constexpr T at_offset(size_type offset) const noexcept {
    return static_cast<T>(static_cast<std::uint64_t>(first_) + static_cast<std::uint64_t>(offset));
  }
  /// The sub-range of `count` items starting at position `offset`; no bounds check (internal use).
  constexpr range subrange(size_type offset, size_type count) const noexcept {
    range r;
    r.first_ = at_offset(offset);
    r.last_ = at_offset(offset + count);
    return r;
  }

  /// Iteration, so that `for (auto i : chunk)` works in chunk functions.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::int64_t;
    constexpr iterator() = default;
    constexpr explicit iterator(T value) : value_(value) {}
    constexpr T operator*() const noexcept { return value_; }
    constexpr iterator& operator++() noexcept {
      ++value_;
      return *this;
    }
    constexpr iterator operator++(int) noexcept {
      auto old = *this;
      ++value_;
      return old;
    }
    constexpr bool operator==(const iterator&) const = default;

   private:
    T value_{};
  };
  constexpr iterator begin() const noexcept { return iterator{first_}; }
  constexpr iterator end() const noexcept { return iterator{last_}; }

  constexpr bool operator==(const range&) const = default;

 private:
  T first_{};
  T last_{};
};

}  // namespace mpiproc
