#include <mpiproc/detail/check.hpp>
#include <mpiproc/error.hpp>

#include <string>

namespace mpiproc {

namespace {
std::string describe(const std::string& routine, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return routine + " failed with MPI error code " + std::to_string(code);
  return routine + " failed: " + std::string(text, static_cast<std::size_t>(length));
}
}  // namespace

mpi_error::mpi_error(std::string routine, int code) : error(describe(routine, code)), routine_(std::move(routine)), code_(code) {}

remote_error::remote_error(int rank, std::string message, int failed_ranks)
    : error("rank " + std::to_string(rank) + ": " + message +
            (failed_ranks > 1 ? " (and " + std::to_string(failed_ranks - 1) + " more rank(s) failed)" : "")),
      rank_(rank),
      message_(std::move(message)),
      failed_ranks_(failed_ranks) {}

namespace detail {
void throw_mpi_error(int code, const char* call) {
  std::string text(call);
  throw mpi_error(text.substr(0, text.find('(')), code);
}
}  // namespace detail

}  // namespace mpiproc
