#pragma once

#include <cstdint>
#include <functional>

namespace mpiproc::detail {

/// Runs `release` at the start of MPI_Finalize unless forget_at_finalize(id) came first, so that
/// MPI objects that outlive the environment (or were dropped while an exception unwound) are freed
/// while MPI still works. Releases run newest first; objects are created collectively, so every
/// rank frees them in the same order. Returns the id for forget_at_finalize.
std::uint64_t release_at_finalize(std::function<void()> release);

/// Drops a release registered by release_at_finalize (its object freed itself).
void forget_at_finalize(std::uint64_t id) noexcept;

/// Whether MPI_Finalize has begun (or finished): MPI objects may no longer be used.
bool mpi_finalizing() noexcept;
/// The same in one atomic load, for hot paths: exact once anything is registered (a
/// communicator is), as MPI_Finalize then tells the registry first.
bool finalize_begun() noexcept;

}  // namespace mpiproc::detail
