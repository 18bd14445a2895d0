#include "communicator_state.hpp"

#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/schedule_loop.hpp>

#include <mpiproc/error.hpp>

#include <algorithm>
#include <stdexcept>

namespace mpiproc::detail {

namespace {
constexpr std::int64_t dynamic_chunks_per_rank = 32;

std::uint64_t chunks_of(std::int64_t n, std::int64_t size) {
  return n == 0 ? 0 : (static_cast<std::uint64_t>(n) - 1) / static_cast<std::uint64_t>(size) + 1;
}
}  // namespace

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
    done += std::min(remaining, std::max(smallest, remaining / divisor + (remaining % divisor != 0)));
    bounds.push_back(done);
  }
  return bounds;
}

chunk_source::chunk_source(const communicator& comm, std::int64_t n, const schedule& s)
    : chunk_source(&comm, n, s, comm.rank(), comm.size()) {}

chunk_source::chunk_source(std::int64_t n, const schedule& s, int rank, int ranks)
    : chunk_source(nullptr, n, s, rank, ranks) {}

chunk_source::chunk_source(const communicator* comm, std::int64_t n, const schedule& s, int rank, int ranks)
    : comm_(comm), n_(n), kind_(s.type()), rank_(rank), ranks_(ranks) {
  // On one rank a shared counter only adds round trips; with no items there is nothing to share.
  if (n == 0 || (ranks == 1 && (kind_ == schedule::kind::dynamic || kind_ == schedule::kind::guided)))
    kind_ = schedule::kind::block;
  switch (kind_) {
    case schedule::kind::block:
      chunks_ = n == 0 ? 0 : 1;
      break;
    case schedule::kind::cyclic:
      chunk_ = std::max<std::int64_t>(1, s.chunk());
      chunks_ = chunks_of(n, chunk_);
      next_ = static_cast<std::uint64_t>(rank);
      break;
    case schedule::kind::dynamic:
      chunk_ = dynamic_chunk_size(n, ranks, s.chunk());
      chunks_ = chunks_of(n, chunk_);
      break;
    case schedule::kind::guided:
      bounds_ = guided_bounds(n, ranks, s.chunk());
      chunks_ = bounds_.size() - 1;
      break;
  }
  const bool shared = kind_ == schedule::kind::dynamic || kind_ == schedule::kind::guided;
  if (shared && !comm)
    throw std::logic_error("mpiproc: a dynamic or guided schedule's chunks are not known in advance");
  if (shared && !comm->state().counter())
    throw usage_error("mpiproc: over several nodes, dynamic and guided schedules need MPI_THREAD_MULTIPLE (an "
                      "mpiproc::environment asks for it); initialize MPI with it, or use block or cyclic schedules");
}

void chunk_source::prepare(const communicator& comm) {
  communicator_state& state = comm.state();
  state.begin_map_call();
  if (comm.size() == 1) return;  // one rank runs every schedule as block
  if (!state.counter()) {
    int level = MPI_THREAD_SINGLE;
    MPIPROC_CHECK(MPI_Query_thread(&level));
    try {
      state.make_counter(comm);
    } catch (const usage_error&) {
      // Across nodes the counter needs MPI_THREAD_MULTIPLE (the same on every rank): block and
      // cyclic work without it, and dynamic says so.
      if (level < MPI_THREAD_MULTIPLE) return;
      throw;
    }
  }
  state.counter()->begin_loop();
}

bool chunk_source::next(chunk& c) {
  const auto ranks = static_cast<std::int64_t>(ranks_);
  switch (kind_) {
    case schedule::kind::block: {
      if (chunks_ == 0) return false;
      chunks_ = 0;
      c = block_chunk(n_, rank_, ranks_);
      return c.count > 0;
    }
    case schedule::kind::cyclic: {
      if (next_ >= chunks_) return false;
      const auto first = static_cast<std::int64_t>(next_);
      if (chunk_ == 1) {  // all of this rank's items as one strided chunk
        c = {first, (n_ - first - 1) / ranks + 1, ranks};
        next_ = chunks_;
      } else {
        c = {first * chunk_, std::min(chunk_, n_ - first * chunk_), 1};
        next_ += static_cast<std::uint64_t>(ranks);
      }
      return true;
    }
    case schedule::kind::dynamic: {
      const std::uint64_t k = comm_->state().counter()->next();
      if (k >= chunks_) return false;
      const std::int64_t offset = static_cast<std::int64_t>(k) * chunk_;
      c = {offset, std::min(chunk_, n_ - offset), 1};
      return true;
    }
    case schedule::kind::guided: {
      const std::uint64_t k = comm_->state().counter()->next();
      if (k >= chunks_) return false;
      c = {bounds_[k], bounds_[k + 1] - bounds_[k], 1};
      return true;
    }
  }
  return false;
}

void chunk_source::cancel() noexcept {
  if (kind_ != schedule::kind::dynamic && kind_ != schedule::kind::guided) return;
  try {
    comm_->state().counter()->cancel(chunks_);
  } catch (...) {
    // The user's error matters more than a failure to stop the others early.
  }
}

}  // namespace mpiproc::detail
