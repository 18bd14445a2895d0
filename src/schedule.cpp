#include <mpiproc/error.hpp>
#include <mpiproc/schedule.hpp>

namespace mpiproc {

std::int64_t schedule::checked(std::int64_t chunk, const char* what) {
  if (chunk < 1)
    throw usage_error(std::string("mpiproc::schedule::") + what + ": the chunk size must be at least 1, got " +
                      std::to_string(chunk));
  return chunk;
}

schedule schedule::from_name(const std::string& name) {
  if (name == "block") return block();
  if (name == "cyclic") return cyclic();
  if (name == "dynamic") return dynamic();
  if (name == "guided") return guided();
  throw usage_error("unknown schedule '" + name + "'; use block, cyclic, dynamic or guided");
}

const char* schedule::name() const noexcept {
  switch (kind_) {
    case kind::block: return "block";
    case kind::cyclic: return "cyclic";
    case kind::dynamic: return "dynamic";
    case kind::guided: return "guided";
  }
  return "?";
}

}  // namespace mpiproc
