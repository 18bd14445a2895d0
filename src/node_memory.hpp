#pragma once

// The one-node path of shared_segment: memory every rank maps, and sleeping on its words.

#include <mpiproc/detail/clock.hpp>

#include <mpi.h>

#include <cstddef>
#include <cstdint>

namespace mpiproc::detail::node_memory {

// Each rank's part of the memory begins with a header: 8 sleeping places (futex word and sleeper
// count), then the broken word (0, or 1 + the rank whose failure broke the segment).
constexpr std::size_t places = 8;
constexpr std::size_t header_bytes = 128;
constexpr std::size_t broken_at = 8 * places;

/// Sleeps while *word == expected (until woken, or until the deadline).
void futex_wait(std::uint32_t* word, std::uint32_t expected, const deadline& until);
/// Wakes every rank sleeping on `word`.
void futex_wake_all(std::uint32_t* word);

/// Collective over `comm` (all on one node): `total` bytes of zeroed memory that every rank maps,
/// or nullptr on every rank if any rank could not map it. An anonymous file (memfd) that rank 0
/// makes and the others open through /proc/<pid>/fd: it has no name in /dev/shm or anywhere, so a
/// rank killed at any moment, even while the others are still opening it, leaves no file behind;
/// the kernel frees the memory with the last mapping. (MPI_Win_allocate_shared's file is named in
/// /dev/shm until every rank has mapped it: a rank killed meanwhile left it there for good.)
/// MPIPROC_SHARED_MEMORY=window on any rank makes every rank use the window instead.
std::byte* map_anonymous(MPI_Comm comm, int rank, std::size_t total);

}  // namespace mpiproc::detail::node_memory
