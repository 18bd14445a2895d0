#pragma once

#include <mpi.h>

namespace mpiproc::detail {

/// Throws mpi_error naming the routine in `call` (the text of the call) when `code` is not MPI_SUCCESS.
[[noreturn]] void throw_mpi_error(int code, const char* call);

inline void check(int code, const char* call) {
  if (code != MPI_SUCCESS) [[unlikely]]
    throw_mpi_error(code, call);
}

}  // namespace mpiproc::detail

/// Calls an MPI routine and throws mpiproc::mpi_error naming it if it fails.
#define MPIPROC_CHECK(call) ::mpiproc::detail::check((call), #call)
