#pragma once

// The typed layer of checkpoints: what a reduction, a map and a for_each save, how rank 0 merges
// the files at the start of a call and writes the whole answer at its end, and the loop that
// records completed chunks.

#include <mpiproc/call_options.hpp>
#include <mpiproc/checkpoint.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/call_monitor.hpp>
#include <mpiproc/detail/checkpoint_file.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/poller.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/range.hpp>
#include <mpiproc/reduction.hpp>
#include <mpiproc/schedule.hpp>

#include <boost/core/demangle.hpp>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

namespace mpiproc::detail {

template <class T>
std::string range_text(const range<T>& r) {
  return "[" + std::to_string(r.first()) + ", " + std::to_string(r.last()) + ") of " +
         boost::core::demangle(typeid(T).name());
}

inline std::string items_text(std::int64_t n) { return std::to_string(n) + " items given on a rank"; }

inline std::string schedule_text(const schedule& s) {
  return std::string(s.name()) + "(" + (s.chunk() ? std::to_string(s.chunk()) : std::string("auto")) + ")";
}

template <class R>
std::string type_text() {
  return boost::core::demangle(typeid(R).name());
}

/// The positions of `records` in order, as stride-1 runs that merge neighbours.
inline std::vector<chunk> merged_runs(const std::vector<const checkpoint_record*>& records) {
  std::vector<chunk> runs;
  for_each_span_in_order(records, [&](std::size_t, std::int64_t, std::int64_t position, std::int64_t count) {
    if (!runs.empty() && runs.back().offset + runs.back().count == position)
      runs.back().count += count;
    else
      runs.push_back(chunk{position, count, 1});
  });
  return runs;
}

/// for_each: positions only.
struct for_each_kind {
  checkpoint_record merge(const std::vector<const checkpoint_record*>& records) const {
    return checkpoint_record{merged_runs(records), {}};
  }
};

/// A reduction: the partial result over the positions (none for a record without positions).
template <class R, class Op>
struct reduction_kind {
  const Op& op;

  R saved(const checkpoint_record& record) const {
    return record.runs.empty() ? identity_of<R>(op) : from_bytes<R>(record.payload);
  }
  checkpoint_record merge(const std::vector<const checkpoint_record*>& records) const {
    R total = identity_of<R>(op);
    for (const checkpoint_record* r : records)
      if (!r->runs.empty()) total = op(std::move(total), from_bytes<R>(r->payload));
    return checkpoint_record{merged_runs(records), to_bytes(total)};
  }
};

/// A map: the result of every position, in the runs' order, as the fields of one message
/// (append_field: trivially copyable results as their bytes, others with their length first).
template <class R>
struct map_kind {
  static void append(std::string& out, const R& value) { append_field(out, value); }
  static std::vector<R> results(const checkpoint_record& record) {
    const auto n = static_cast<std::size_t>(record.items());
    std::vector<R> out;
    out.reserve(n);
    byte_reader in(std::string_view(record.payload));
    try {
      while (out.size() < n) out.push_back(in.get<R>());
    } catch (const error&) {  // a field past the end
    }
    if (out.size() != n || !in.done())
      throw error("mpiproc: a checkpoint's results do not match its positions (another result type?)");
    return out;
  }
  checkpoint_record merge(const std::vector<const checkpoint_record*>& records) const {
    std::vector<std::vector<R>> decoded;
    for (const checkpoint_record* r : records) decoded.push_back(results(*r));
    checkpoint_record out;
    for_each_span_in_order(records,
                           [&](std::size_t record, std::int64_t item, std::int64_t position, std::int64_t count) {
                             if (!out.runs.empty() && out.runs.back().offset + out.runs.back().count == position)
                               out.runs.back().count += count;
                             else
                               out.runs.push_back(chunk{position, count, 1});
                             for (std::int64_t k = 0; k < count; ++k)
                               append(out.payload, decoded[record][static_cast<std::size_t>(item + k)]);
                           });
    return out;
  }
};

/// Rank 0: reads `path` and its rank files, merges any rank files into `path` and removes them;
/// returns the merged record and adds the runs it holds to `absorbed`. A path with no file yet
/// stays without one (nothing to keep).
template <class Kind>
checkpoint_record consolidate(const std::filesystem::path& path, const checkpoint_identity& id, const Kind& kind,
                              std::vector<std::uint64_t>& absorbed) {
  checkpoint_contents found = read_checkpoint(path, id);
  absorbed = found.absorbed;
  absorbed.insert(absorbed.end(), found.part_runs.begin(), found.part_runs.end());
  checkpoint_record merged;
  if (found.parts.empty()) {
    merged = std::move(found.main);
  } else {
    std::vector<const checkpoint_record*> records{&found.main};
    for (const checkpoint_record& part : found.parts) records.push_back(&part);
    merged = kind.merge(records);
    write_checkpoint_main(path, id, merged, absorbed);
  }
  for (const auto& file : found.files) {
    std::error_code ignored;  // a rank file left behind is read again and skipped (absorbed)
    std::filesystem::remove(file, ignored);
  }
  return merged;
}

/// What a checkpointed call knows after its start: on rank 0 the merged record, on every rank the
/// completed positions, the file's path and the run's number.
struct checkpoint_start {
  std::filesystem::path path;
  checkpoint_identity id;
  std::uint64_t run = 0;
  checkpoint_record merged;             // rank 0 only
  std::vector<std::uint64_t> absorbed;  // rank 0 only
  std::vector<chunk> done;              // every rank
};

/// Collective: rank 0 merges what earlier runs left (refusing another call's file or a corrupted
/// one: every rank throws), then every rank learns the completed positions.
template <class Kind>
checkpoint_start begin_checkpoint(const communicator& comm, const call_signature& sig, const checkpoint& cp,
                                  checkpoint_identity id, const Kind& kind) {
  checkpoint_start start;
  start.id = std::move(id);
  start.id.tag = cp.tag;
  run_collectively(comm.native(), sig, [&] {
    if (comm.rank() != 0) return;
    start.path = std::filesystem::absolute(cp.path);
    start.merged = consolidate(start.path, start.id, kind, start.absorbed);
    start.run = new_checkpoint_run();
  });
  // Rank 0's path and tag hold for the call (ranks may run in other folders).
  const std::string path_text = start.path.string();
  std::vector<char> text(path_text.begin(), path_text.end());
  broadcast(comm.native(), text, 0);
  start.path = std::string(text.begin(), text.end());
  std::vector<char> tag(start.id.tag.begin(), start.id.tag.end());
  broadcast(comm.native(), tag, 0);
  start.id.tag.assign(tag.begin(), tag.end());
  std::vector<std::int64_t> flat;
  if (comm.rank() == 0) {
    flat.push_back(static_cast<std::int64_t>(start.run));
    for (const chunk& c : start.merged.runs) flat.insert(flat.end(), {c.offset, c.count});
  }
  broadcast(comm.native(), flat, 0);
  start.run = static_cast<std::uint64_t>(flat[0]);
  for (std::size_t k = 1; k + 1 < flat.size(); k += 2) start.done.push_back(chunk{flat[k], flat[k + 1], 1});
  return start;
}

/// Collective, once the call's answer is known: rank 0 writes the file with the whole answer
/// (`whole()`: every position of [0, n) and its payload), so a rerun computes nothing.
template <class Whole>
void finish_checkpoint(const communicator& comm, const call_signature& sig, const checkpoint_start& start,
                       Whole&& whole) {
  std::int64_t saved = 0;
  for (const chunk& c : start.done) saved += c.count;
  if (saved == static_cast<std::int64_t>(sig.count)) return;  // the file held the whole answer already
  run_collectively(comm.native(), sig, [&] {
    if (comm.rank() == 0) complete_checkpoint(start.path, start.id, whole(), start.absorbed, start.run, comm.size());
  });
}

/// Every position of [0, n) as runs.
inline std::vector<chunk> all_positions(std::int64_t n) {
  return n > 0 ? std::vector<chunk>{chunk{0, n, 1}} : std::vector<chunk>{};
}

/// This rank's part of a checkpointed call (see fold_chunks) and the agreement that ends it:
/// part.piece(real) folds a real chunk (its payload must then cover it); part.encode(out) brings
/// `out` up to the payload of every piece folded so far. Records each piece and hands the rank
/// file to the writing thread when due. SIGTERM or SIGUSR1 make it write the file and throw
/// interrupted after the piece in hand; if the call fails on any rank, each rank writes what it
/// completed before throwing (not a rank whose watchdog took its part over: its last periodic
/// write stays). With progress or a time limit (`opts`), pieces run in slices (see call_monitor).
template <class Part>
void checkpointed_run(const communicator& comm, const call_signature& sig, const checkpoint_start& start,
                      std::int64_t n, const schedule& s, const call_options& opts, Part& part) {
  checkpoint_writer writer(comm, start.path, start.id, start.run, n, start.done, opts.checkpoint.every);
  std::string payload;
  auto save_now = [&] {
    part.encode(payload);
    writer.save_now(payload);
  };
  auto record = [&](const chunk& done) {
    part.piece(done);
    writer.completed(done);
  };
  std::optional<interrupt_guard> signals(std::in_place);
  run_map_part(
      comm, sig, opts, n, n - writer.remaining().size(),
      [&](auto&& each) {
        for_each_owned_chunk(comm, writer.remaining().size(), s, [&](const chunk& virtual_chunk) {
          writer.remaining().to_real(virtual_chunk, writer.piece(), [&](const chunk& real) {
            if (const int signal = interrupt_guard::pending()) {
              save_now();
              writer.throw_interrupted(signal);
            }
            // Each slice is recorded as it completes, so that the payload (which every slice adds
            // to) always covers exactly the recorded positions.
            each(real, record);
            if (writer.due()) {
              part.encode(payload);
              writer.save_later(payload);
            }
          });
        });
        // A signal after the last piece: the program still stops as asked (the rerun finds it all).
        if (const int signal = interrupt_guard::pending()) {
          save_now();
          writer.throw_interrupted(signal);
        }
      },
      [&](std::exception_ptr failure, bool by_watchdog, const settle_fn& settle) {
        if (!by_watchdog) writer.stop();
        try {
          agree_on_failure(comm.native(), failure, &sig, settle, !by_watchdog);
        } catch (...) {
          // The call failed somewhere: keep the chunks this rank completed, and return only once
          // every rank has, so that a rerun right after this one finds every rank's file.
          if (!by_watchdog && !writer.saved_all()) {
            try {
              save_now();
            } catch (...) {
              // the call's failure matters more
            }
          }
          MPI_Request all_saved = MPI_REQUEST_NULL;
          if (MPI_Ibarrier(comm.native(), &all_saved) == MPI_SUCCESS) complete_by(all_saved, std::nullopt);
          throw;
        }
      });
  if (const int signal = interrupt_guard::pending()) {
    // Signalled while the other ranks finished: the call is complete everywhere, but this rank
    // saves its part and then takes the signal as it would have without a checkpoint.
    save_now();
    signals.reset();
    std::raise(signal);
  }
}

}  // namespace mpiproc::detail
