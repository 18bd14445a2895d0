#pragma once

// The clock every wait measures with, a wait's optional deadline, and the pause a spin loop makes.

#include <chrono>
#include <optional>

namespace mpiproc::detail {

using clock = std::chrono::steady_clock;
/// When a wait gives up; none: never.
using deadline = std::optional<clock::time_point>;

/// A pause in a spin loop: lets the other hardware thread of the core run.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace mpiproc::detail
