#include <mpiproc/counter.hpp>

namespace mpiproc {

namespace {
std::uint64_t bits(std::int64_t v) { return static_cast<std::uint64_t>(v); }
std::int64_t from_bits(std::uint64_t v) { return static_cast<std::int64_t>(v); }
}  // namespace

counter::counter(const communicator& comm, std::int64_t initial)
    : word_(std::make_unique<detail::shared_segment>(comm, comm.rank() == 0 ? 8 : 0, &initial)) {}

std::int64_t counter::fetch_add(std::int64_t delta) { return from_bits(word_->fetch_add(0, 0, bits(delta))); }
std::int64_t counter::load() { return from_bits(word_->load(0, 0)); }
void counter::store(std::int64_t value) { word_->store(0, 0, bits(value)); }
std::int64_t counter::exchange(std::int64_t value) { return from_bits(word_->exchange(0, 0, bits(value))); }

bool counter::compare_exchange(std::int64_t& expected, std::int64_t desired) {
  std::uint64_t seen = bits(expected);
  const bool ok = word_->compare_exchange(0, 0, seen, bits(desired));
  expected = from_bits(seen);
  return ok;
}

}  // namespace mpiproc
