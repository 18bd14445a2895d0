#pragma once

#include <cstdint>
#include <string>

namespace mpiproc {

/// How a collective loop splits its range over the ranks.
///
/// - block: one contiguous block per rank, remainders spread one item each over the first ranks.
///   The default: the fastest when every item costs the same.
/// - cyclic(c): chunks of c items dealt round-robin (rank r takes chunks r, r + P, ...).
/// - dynamic(c): chunks of c items taken on demand from a shared counter, so a rank that finishes
///   early takes more; every rank works, none is a master. Pick it when item costs vary
///   (primes: later numbers cost more). Without c, about 32 chunks per rank.
/// - guided(min): like dynamic, but chunks start large and shrink (each is remaining / 2P rounded up, at least
///   `min`), fewer counter trips than dynamic for the same balance at the end.
class schedule {
 public:
  enum class kind { block, cyclic, dynamic, guided };

  /// The default: block.
  constexpr schedule() = default;

  static constexpr schedule block() { return schedule{kind::block, 0}; }
  /// Throws usage_error if chunk < 1.
  static schedule cyclic(std::int64_t chunk = 1) { return schedule{kind::cyclic, checked(chunk, "cyclic")}; }
  /// Dynamic with an automatic chunk size (about 32 chunks per rank).
  static constexpr schedule dynamic() { return schedule{kind::dynamic, 0}; }
  /// Throws usage_error if chunk < 1.
  static schedule dynamic(std::int64_t chunk) { return schedule{kind::dynamic, checked(chunk, "dynamic")}; }
  /// Throws usage_error if min_chunk < 1.
  static schedule guided(std::int64_t min_chunk = 1) { return schedule{kind::guided, checked(min_chunk, "guided")}; }
  /// "block", "cyclic", "dynamic" or "guided" with the default chunk; throws usage_error otherwise.
  static schedule from_name(const std::string& name);

  constexpr kind type() const noexcept { return kind_; }
  /// The chunk size (the minimum chunk for guided); 0 means automatic.
  constexpr std::int64_t chunk() const noexcept { return chunk_; }
  /// "block", "cyclic", "dynamic" or "guided".
  const char* name() const noexcept;

 private:
  constexpr schedule(kind k, std::int64_t chunk) : kind_(k), chunk_(chunk) {}
  static std::int64_t checked(std::int64_t chunk, const char* what);

  kind kind_ = kind::block;
  std::int64_t chunk_ = 0;
};

}  // namespace mpiproc
