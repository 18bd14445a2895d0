#include <mpiproc/detail/schedule_loop.hpp>

namespace mpiproc::detail {

namespace {
constexpr std::int64_t dynamic_chunks_per_rank = 32;
}

std::int64_t dynamic_chunk_size(std::int64_t n, int ranks, std::int64_t requested) {
  if (requested > 0) return requested;
  return std::max<std::int64_t>(1, n / (static_cast<std::int64_t>(ranks) * dynamic_chunks_per_rank));
}

std::vector<std::int64_t> guided_bounds(std::int64_t n, int ranks, std::int64_t min_chunk) {
  const std::int64_t smallest = std::max<std::int64_t>(1, min_chunk);
  const std::int64_t divisor = 2 * static_cast<std::int64_t>(ranks);
  std::vector<std::int64_t> bounds{0};
  for (std::int64_t done = 0; done < n;) {
    const std::int64_t remaining = n - done;
    const std::int64_t size = std::min(remaining, std::max(smallest, (remaining + divisor - 1) / divisor));
    done += size;
    bounds.push_back(done);
  }
  return bounds;
}

}  // namespace mpiproc::detail
