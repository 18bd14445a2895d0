#pragma once

// The seed programs' workloads, shared by the programs and by the benchmark's raw-MPI baselines
// so that both run exactly the same per-item code.

#include <gmp.h>

#include <cstdint>

namespace workloads {

/// Trial division as in the seed: n is prime if no i in [2, sqrt(n)] divides it. Where n fits in
/// 32 bits the divisions are 32-bit, as a hand-written program's would be (on x86 a 64-bit
/// division costs several times a 32-bit one).
inline bool is_prime(std::int64_t n) {
  if (n < 2) return false;
  if (n <= INT64_C(0xFFFFFFFF)) {
    const auto m = static_cast<std::uint32_t>(n);
    for (std::uint32_t i = 2; std::uint64_t{i} * i <= m; ++i)
      if (m % i == 0) return false;
    return true;
  }
  for (std::int64_t i = 2; i * i <= n; ++i)
    if (n % i == 0) return false;
  return true;
}

/// The seed's per-item prime test as a sum term: n if prime, else 0.
inline std::int64_t prime_or_zero(std::int64_t n) { return is_prime(n) ? n : 0; }

/// The bit length of k! (arbitrary precision, GMP).
inline std::uint64_t factorial_bits(unsigned long k) {
  mpz_t f;
  mpz_init(f);
  mpz_fac_ui(f, k);
  const std::uint64_t bits = mpz_sizeinbase(f, 2);
  mpz_clear(f);
  return bits;
}

}  // namespace workloads
