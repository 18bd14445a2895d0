#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>

namespace mpiproc {

/// Where a map-style call (map_reduce, map_reduce_chunks, map, for_each and their _root, _chunk and
/// items forms) records its progress, so that a run killed partway resumes where it stopped:
///
///   auto sum = mpiproc::map_reduce(world, range, fn, std::plus<>{}, mpiproc::schedule::dynamic(),
///                                  mpiproc::checkpoint{"sum.ckpt", "primes v1"});
///
/// As the call runs, every rank records the chunks it completed and their partial results (the
/// results themselves for map) in a file of its own next to `path` (`path.part-<run>-<rank>`),
/// rewritten at most once per `every` by a thread of its own: written to a temporary file, flushed
/// to disk (fsync) and renamed, so a file is never half written. When the call fails (a function
/// threw, a signal came) every rank writes what it completed before the call throws. At the start
/// of the next call rank 0 merges the rank files into `path`; that call, at any rank count,
/// computes only the positions no earlier run completed and returns exactly what an uninterrupted
/// run returns. A call that completes writes its whole answer to `path` (one durable write by rank
/// 0): running it again computes nothing. A piece of work that fails partway runs again whole.
///
/// While the call runs, SIGTERM and SIGUSR1 (what mpirun and Slurm send before a kill) make every
/// rank finish the chunk in hand, write its progress and throw mpiproc::interrupted; a second
/// signal kills as usual. Outside checkpointed calls the signals keep their usual handlers.
///
/// The file names the call (reduction, map or for_each), the range, the schedule, the result
/// type and `tag`, with a checksum: another call's file is refused with usage_error, and a
/// corrupted or truncated file throws mpiproc::error (remote_error on every rank), never used.
/// `path` and `tag` are taken from rank 0; `path` must be on a file system every rank sees, and
/// only one job may use it at a time. Delete the file (and its parts) to start over.
struct checkpoint {
  /// No checkpoint: the call records nothing (the default of every map-style call).
  checkpoint() = default;
  /// Record progress at `path`. `tag` names what the function computes (a version, the input's
  /// name): the range and types alone cannot tell that the function changed. Each rank rewrites
  /// its file at most once per `every` (and when it finishes or is interrupted).
  explicit checkpoint(std::filesystem::path path, std::string tag = {},
                      std::chrono::milliseconds every = std::chrono::seconds(2))
      : path(std::move(path)), tag(std::move(tag)), every(every) {}

  /// Whether this records anything (a non-empty path).
  explicit operator bool() const noexcept { return !path.empty(); }

  std::filesystem::path path;
  std::string tag;
  std::chrono::milliseconds every{std::chrono::seconds(2)};
};

}  // namespace mpiproc
