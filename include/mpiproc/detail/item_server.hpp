#pragma once

#include <mpiproc/communicator.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mpiproc::detail {

class service_endpoint;

/// The items of a call under a dynamic or guided schedule, fetched as each chunk is claimed: the
/// source's service thread answers every other rank's fetch (so a source busy computing still
/// answers), and no rank holds more than its chunks' items. One round trip per chunk.
class item_server {
 public:
  /// Encodes the items [offset, offset + count) (runs on the source's service thread).
  using encoder = std::function<std::string(std::int64_t offset, std::int64_t count)>;

  /// Whether this process can serve (MPI_THREAD_MULTIPLE); the same on every rank of a job.
  static bool available();

  /// Collective over `comm`: `source` serves through `encode` (ignored elsewhere).
  item_server(const communicator& comm, int source, encoder encode);
  ~item_server();
  item_server(const item_server&) = delete;
  item_server& operator=(const item_server&) = delete;

  /// The encoded items [offset, offset + count), from the source.
  std::string fetch(std::int64_t offset, std::int64_t count);

 private:
  std::unique_ptr<service_endpoint> endpoint_;
  int source_;
};

}  // namespace mpiproc::detail
