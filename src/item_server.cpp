#include "service_endpoint.hpp"

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/item_server.hpp>

namespace mpiproc::detail {

bool item_server::available() {
  int level = MPI_THREAD_SINGLE;
  MPIPROC_CHECK(MPI_Query_thread(&level));
  return level >= MPI_THREAD_MULTIPLE;
}

item_server::item_server(const communicator& comm, int source, encoder encode) : source_(source) {
  service_endpoint::handler answer;
  if (comm.rank() == source)
    answer = [encode = std::move(encode)](int, const std::string& request) -> std::optional<std::string> {
      byte_reader in(request);
      const auto offset = static_cast<std::int64_t>(in.number());
      return encode(offset, static_cast<std::int64_t>(in.number()));
    };
  endpoint_ = std::make_unique<service_endpoint>(comm, service_endpoint::within_call{}, std::move(answer));
}

item_server::~item_server() = default;

std::string item_server::fetch(std::int64_t offset, std::int64_t count) {
  return *endpoint_->call(source_, byte_writer()
                                       .number(static_cast<std::uint64_t>(offset))
                                       .number(static_cast<std::uint64_t>(count))
                                       .take());
}

}  // namespace mpiproc::detail
