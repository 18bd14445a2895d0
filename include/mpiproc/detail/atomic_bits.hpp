#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <type_traits>

namespace mpiproc::detail {

/// Whether a T travels through shared state as one atomic word of its own size.
template <class T>
inline constexpr bool atomic_sized =
    std::is_trivially_copyable_v<T> && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

/// Integers (not bool) that shared state can add to atomically.
template <class T>
concept atomic_integral = std::integral<T> && !std::same_as<T, bool> && atomic_sized<T>;

template <std::size_t Size>
using unsigned_of_size = std::conditional_t<
    Size == 1, std::uint8_t,
    std::conditional_t<Size == 2, std::uint16_t, std::conditional_t<Size == 4, std::uint32_t, std::uint64_t>>>;

/// A T's bytes as the low bytes of a word, and back.
template <class T>
std::uint64_t to_word(const T& v) {
  return std::bit_cast<unsigned_of_size<sizeof(T)>>(v);
}
template <class T>
T from_word(std::uint64_t w) {
  return std::bit_cast<T>(static_cast<unsigned_of_size<sizeof(T)>>(w));
}

}  // namespace mpiproc::detail
