#pragma once

// The untyped core of checkpoints (see checkpoint.hpp): the file format, durable writes, merging
// completed positions, the positions left to compute, and the signals that interrupt a call.
// The typed layer (checkpointed.hpp) supplies the payloads.

#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/schedule_loop.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mpiproc::detail {

/// What a checkpoint file was written for, field by field; a file whose fields differ from the
/// call's is refused with usage_error naming the field.
struct checkpoint_identity {
  std::string call;      // "reduction", "map" or "for_each": the payload's kind
  std::string range;     // "[1, 101) of long" or "100 items"
  std::string schedule;  // "dynamic(auto)"
  std::string result;    // the result type, "none" for for_each
  std::string tag;       // the user's
};

/// Completed positions (as chunks: offset, count, stride) and their payload: a reduction's partial
/// result over them, a map's results in the runs' order, nothing for for_each.
struct checkpoint_record {
  std::vector<chunk> runs;
  std::string payload;

  std::int64_t items() const noexcept {
    std::int64_t total = 0;
    for (const chunk& r : runs) total += r.count;
    return total;
  }
};

/// What rank 0 finds at a checkpoint path: the merged file and the rank files not merged yet.
struct checkpoint_contents {
  bool has_main = false;
  checkpoint_record main;                    // its runs are stride 1, disjoint, in position order
  std::vector<std::uint64_t> absorbed;       // runs whose rank files `main` already holds
  std::vector<checkpoint_record> parts;      // rank files of runs not absorbed
  std::vector<std::uint64_t> part_runs;      // the run of each part
  std::vector<std::filesystem::path> files;  // every rank file and stale temporary file found
};

/// Reads and checks `path` and its rank files. Throws usage_error if a file was written for another
/// identity, error if one is corrupted or truncated (its checksum or length is wrong).
checkpoint_contents read_checkpoint(const std::filesystem::path& path, const checkpoint_identity& id);

/// Writes the merged file durably (temporary file, fsync, rename, fsync of the folder), mode 0644.
void write_checkpoint_main(const std::filesystem::path& path, const checkpoint_identity& id,
                           const checkpoint_record& merged, const std::vector<std::uint64_t>& absorbed);

/// The rank file of `rank` in run `run` (durably, as the merged file).
std::filesystem::path checkpoint_part_path(const std::filesystem::path& path, std::uint64_t run, int rank);
void write_checkpoint_part(const std::filesystem::path& part, const checkpoint_identity& id, std::uint64_t run,
                           int rank, const checkpoint_record& record);

/// Calls span(record, item, position, count) for every completed position of `records`, in
/// position order, in spans of consecutive positions taken from one run: `item` is the index of
/// the span's first item in its record's payload order. Throws error if two runs share a position.
void for_each_span_in_order(const std::vector<const checkpoint_record*>& records,
                            const std::function<void(std::size_t, std::int64_t, std::int64_t, std::int64_t)>& span);

/// The positions of [0, n) that no earlier run completed, numbered 0..size()-1 in position order
/// (the "virtual" range a resumed call schedules).
class remaining_positions {
 public:
  /// `done`: stride 1, disjoint, in position order (a merged record's runs).
  remaining_positions(std::int64_t n, const std::vector<chunk>& done);
  std::int64_t size() const noexcept { return size_; }

  /// Calls f(real) for the positions of `virtual_chunk`, in order, as real chunks of at most
  /// `piece` items, each inside one gap of `done` (a strided chunk stays strided).
  template <class F>
  void to_real(const chunk& virtual_chunk, std::int64_t piece, F&& f) const {
    std::int64_t v = virtual_chunk.offset, left = virtual_chunk.count;
    const std::int64_t stride = virtual_chunk.stride;
    while (left > 0) {
      const auto k =
          static_cast<std::size_t>(std::upper_bound(virtual_.begin(), virtual_.end(), v) - virtual_.begin() - 1);
      const std::int64_t gap_end = virtual_[k] + length_[k];
      std::int64_t in_gap = std::min(left, (gap_end - 1 - v) / stride + 1);
      left -= in_gap;
      for (std::int64_t real = real_[k] + (v - virtual_[k]); in_gap > 0;) {
        const std::int64_t count = std::min(in_gap, piece);
        f(chunk{real, count, stride});
        real += count * stride;
        v += count * stride;
        in_gap -= count;
      }
    }
  }

 private:
  std::int64_t size_ = 0;
  std::vector<std::int64_t> real_, virtual_, length_;  // per gap: its first position, virtual number, length
};

/// SIGTERM and SIGUSR1 set a flag instead of ending the process while one exists (RAII; one at a
/// time per process); the first such signal also resets the handler, so a second one kills as
/// usual. The handlers it replaced come back when it ends.
class interrupt_guard {
 public:
  interrupt_guard();
  ~interrupt_guard();
  interrupt_guard(const interrupt_guard&) = delete;
  interrupt_guard& operator=(const interrupt_guard&) = delete;
  /// The signal received since construction, or 0.
  static int pending() noexcept;
};

/// One rank's side of a checkpointed call: the positions left, the runs it completed in this
/// call, and its rank file. Periodic rewrites (at most once per `every`) go to a thread of their
/// own, so that computing never waits for the disk (a durable write costs milliseconds); only a
/// failed or interrupted call waits for its last write.
class checkpoint_writer {
 public:
  checkpoint_writer(const communicator& comm, std::filesystem::path path, checkpoint_identity id, std::uint64_t run,
                    std::int64_t n, const std::vector<chunk>& done, std::chrono::milliseconds every);
  ~checkpoint_writer();
  checkpoint_writer(const checkpoint_writer&) = delete;
  checkpoint_writer& operator=(const checkpoint_writer&) = delete;

  const remaining_positions& remaining() const noexcept { return remaining_; }
  /// The most positions computed between two records (about 32 per rank over the call).
  std::int64_t piece() const noexcept { return piece_; }
  /// `run` was computed and its payload taken into account.
  void completed(const chunk& run);
  /// Whether the rank file is older than `every`.
  bool due() const noexcept { return std::chrono::steady_clock::now() >= next_write_; }
  /// Hands the runs completed so far and `payload` (theirs) to the writing thread; returns at once.
  void save_later(const std::string& payload);
  /// Writes them now and waits until they are on disk.
  void save_now(const std::string& payload);
  /// Whether the last save covers every completed run.
  bool saved_all() const noexcept { return saved_all_; }
  /// Waits for the writing thread to finish its write and stops it.
  void stop() noexcept;
  /// The interruption this rank throws: names the signal and the checkpoint.
  [[noreturn]] void throw_interrupted(int signal) const;

 private:
  struct background;

  std::filesystem::path path_, part_;
  checkpoint_identity id_;
  std::uint64_t run_;
  int rank_;
  remaining_positions remaining_;
  std::int64_t piece_;
  std::chrono::milliseconds every_;
  std::chrono::steady_clock::time_point next_write_;
  checkpoint_record record_;
  bool saved_all_ = true;
  std::unique_ptr<background> background_;
};

/// Rank 0, at the end of a call that completed: writes the file with the whole answer and removes
/// the rank files of run `run` (on `ranks` ranks).
void complete_checkpoint(const std::filesystem::path& path, const checkpoint_identity& id,
                         const checkpoint_record& whole, std::vector<std::uint64_t> absorbed, std::uint64_t run,
                         int ranks);

/// A fresh run number (random), for rank files that never collide with another run's.
std::uint64_t new_checkpoint_run();

}  // namespace mpiproc::detail
