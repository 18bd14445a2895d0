#pragma once

#include <mpi.h>

#include <algorithm>
#include <concepts>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>

namespace mpiproc {

/// The smaller of two values; a reduction with a known identity (+infinity, or the type's largest value).
struct minimum {
  template <class T>
  constexpr T operator()(const T& a, const T& b) const {
    return b < a ? b : a;
  }
};

/// The larger of two values; a reduction with a known identity (-infinity, or the type's lowest value).
struct maximum {
  template <class T>
  constexpr T operator()(const T& a, const T& b) const {
    return a < b ? b : a;
  }
};

/// A reduction operator together with its identity, for operators mpiproc does not know
/// (std::plus, std::multiplies, the std bit and logical operators, minimum and maximum it knows).
/// The identity is what a reduction over an empty range returns, and the type of the result.
/// `op` must be associative and commutative: partial results are combined in no fixed order.
template <class Op, class T>
struct reduction {
  Op op;
  T identity;
  constexpr T operator()(const T& a, const T& b) const { return std::invoke(op, a, b); }
};

template <class Op, class T>
reduction(Op, T) -> reduction<Op, T>;

namespace detail {

template <class Op>
struct known_op {
  static constexpr bool known = false;
};

/// Which result types an operator MPI knows applies to.
enum class domain { any, arithmetic, integral };

#define MPIPROC_KNOWN_OP(std_op, mpi_op, identity_expr, types)                     \
  template <class A>                                                               \
  struct known_op<std_op<A>> {                                                     \
    static constexpr bool known = true;                                            \
    static constexpr domain applies_to = domain::types;                            \
    static MPI_Op mpi() noexcept { return mpi_op; }                                \
    template <class T>                                                             \
    static T identity() {                                                          \
      return identity_expr;                                                        \
    }                                                                              \
  };
MPIPROC_KNOWN_OP(std::plus, MPI_SUM, T{}, any)
MPIPROC_KNOWN_OP(std::multiplies, MPI_PROD, T(1), any)
MPIPROC_KNOWN_OP(std::bit_and, MPI_BAND, static_cast<T>(~T{}), integral)
MPIPROC_KNOWN_OP(std::bit_or, MPI_BOR, T{}, integral)
MPIPROC_KNOWN_OP(std::bit_xor, MPI_BXOR, T{}, integral)
MPIPROC_KNOWN_OP(std::logical_and, MPI_LAND, T(true), integral)
MPIPROC_KNOWN_OP(std::logical_or, MPI_LOR, T(false), integral)
#undef MPIPROC_KNOWN_OP

template <>
struct known_op<minimum> {
  static constexpr bool known = true;
  static constexpr domain applies_to = domain::arithmetic;
  static MPI_Op mpi() noexcept { return MPI_MIN; }
  template <class T>
  static T identity() {
    if constexpr (std::numeric_limits<T>::has_infinity) return std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::max();
  }
};

template <>
struct known_op<maximum> {
  static constexpr bool known = true;
  static constexpr domain applies_to = domain::arithmetic;
  static MPI_Op mpi() noexcept { return MPI_MAX; }
  template <class T>
  static T identity() {
    if constexpr (std::numeric_limits<T>::has_infinity) return -std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::lowest();
  }
};

template <class Op>
struct is_reduction : std::false_type {};
template <class Op, class T>
struct is_reduction<reduction<Op, T>> : std::true_type {};

/// The type a reduction with `Op` produces when the mapped function returns `Mapped`.
template <class Op, class Mapped>
struct reduction_result {
  using type = std::decay_t<Mapped>;
};
template <class Op, class T, class Mapped>
struct reduction_result<reduction<Op, T>, Mapped> {
  using type = T;
};

template <class Op, class R>
constexpr bool known_op_applies() {
  if constexpr (!known_op<Op>::known) return false;
  else if constexpr (known_op<Op>::applies_to == domain::integral) return std::is_integral_v<R>;
  else if constexpr (known_op<Op>::applies_to == domain::arithmetic) return std::is_arithmetic_v<R>;
  else return true;
}

/// Op reduces values of type R: a reduction{op, identity}, or an operator mpiproc knows, applied
/// to types it is defined for (bit and logical operators: integers; minimum, maximum: numbers).
template <class Op, class R>
concept reduction_for = is_reduction<Op>::value || known_op_applies<Op, R>();

template <class R, class Op>
R identity_of(const Op& op) {
  if constexpr (is_reduction<Op>::value)
    return op.identity;
  else
    return known_op<Op>::template identity<R>();
}

}  // namespace detail

}  // namespace mpiproc
