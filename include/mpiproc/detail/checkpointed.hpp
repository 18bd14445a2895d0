#pragma once

// The typed layer of checkpoints: what a reduction, a map and a for_each save, how rank 0 merges
// the files at the start and end of a call, and the loop that records completed chunks.

#include <mpiproc/checkpoint.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/checkpoint_file.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/failure.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/detail/transport.hpp>
#include <mpiproc/reduction.hpp>
#include <mpiproc/schedule.hpp>

#include <boost/core/demangle.hpp>

#include <cstdint>
#include <cstring>
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

/// A map: the result of every position, in the runs' order (trivially copyable results as their
/// bytes, others with their length before them).
template <class R>
struct map_kind {
  static void append(std::string& out, const R& value) {
    if constexpr (travels_raw<R>) {
      append_bytes(out, value);
    } else {
      const std::string bytes = to_bytes(value);
      const std::uint64_t length = bytes.size();
      out.append(reinterpret_cast<const char*>(&length), sizeof length);
      out += bytes;
    }
  }
  static std::vector<R> results(const checkpoint_record& record) {
    const auto n = static_cast<std::size_t>(record.items());
    std::vector<R> out;
    out.reserve(n);
    const char* at = record.payload.data();
    const char* const end = at + record.payload.size();
    for (std::size_t k = 0; k < n; ++k) {
      std::uint64_t length = sizeof(R);
      if constexpr (!travels_raw<R>) {
        if (end - at < static_cast<std::ptrdiff_t>(sizeof length)) break;
        std::memcpy(&length, at, sizeof length);
        at += sizeof length;
      }
      if (static_cast<std::uint64_t>(end - at) < length) break;
      out.push_back(from_bytes<R>(at, length));
      at += length;
    }
    if (out.size() != n || at != end)
      throw error("mpiproc: a checkpoint's results do not match its positions (another result type?)");
    return out;
  }
  checkpoint_record merge(const std::vector<const checkpoint_record*>& records) const {
    std::vector<std::vector<R>> decoded;
    for (const checkpoint_record* r : records) decoded.push_back(results(*r));
    checkpoint_record out;
    for_each_span_in_order(records, [&](std::size_t record, std::int64_t item, std::int64_t position, std::int64_t count) {
      if (!out.runs.empty() && out.runs.back().offset + out.runs.back().count == position)
        out.runs.back().count += count;
      else
        out.runs.push_back(chunk{position, count, 1});
      for (std::int64_t k = 0; k < count; ++k) append(out.payload, decoded[record][static_cast<std::size_t>(item + k)]);
    });
    return out;
  }
};

/// Rank 0: reads `path` and its rank files, merges them into `path` (when there is anything new)
/// and removes the rank files; returns the merged record.
template <class Kind>
checkpoint_record consolidate(const std::filesystem::path& path, const checkpoint_identity& id, const Kind& kind) {
  checkpoint_contents found = read_checkpoint(path, id);
  if (found.has_main && found.parts.empty() && found.files.empty()) return std::move(found.main);
  std::vector<const checkpoint_record*> records{&found.main};
  for (const checkpoint_record& part : found.parts) records.push_back(&part);
  checkpoint_record merged = found.parts.empty() ? std::move(found.main) : kind.merge(records);
  std::vector<std::uint64_t> absorbed = found.absorbed;
  absorbed.insert(absorbed.end(), found.part_runs.begin(), found.part_runs.end());
  if (!found.parts.empty() || !found.has_main) write_checkpoint_main(path, id, merged, absorbed);
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
  checkpoint_record merged;   // rank 0 only (payload)
  std::vector<chunk> done;    // every rank
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
    start.merged = consolidate(start.path, start.id, kind);
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

/// Collective, after the call's agreement: rank 0 merges this run's rank files into the file,
/// which then holds the whole answer.
template <class Kind>
void finish_checkpoint(const communicator& comm, const call_signature& sig, const checkpoint_start& start,
                       const Kind& kind) {
  run_collectively(comm.native(), sig, [&] {
    if (comm.rank() == 0) consolidate(start.path, start.id, kind);
  });
}

/// This rank's part of a checkpointed call: piece(real) computes a real chunk (its payload must
/// then cover it); encode(out) sets `out` to the payload of every chunk computed so far. Records
/// each piece, rewrites the rank file when due and at the end (also when a piece throws), and
/// throws interrupted after the piece in hand when SIGTERM or SIGUSR1 arrives.
template <class Piece, class Encode>
void checkpointed_loop(const communicator& comm, const checkpoint_start& start, std::int64_t n, const schedule& s,
                       std::chrono::milliseconds every, Piece&& piece, Encode&& encode) {
  checkpoint_writer writer(comm, start.path, start.id, start.run, n, start.done, every);
  std::string payload;
  auto save = [&] {
    encode(payload);
    writer.write(payload);
  };
  const interrupt_guard signals;
  try {
    for_each_owned_chunk(comm, writer.remaining().size(), s, [&](const chunk& virtual_chunk) {
      writer.remaining().to_real(virtual_chunk, writer.piece(), [&](const chunk& real) {
        if (const int signal = interrupt_guard::pending()) {
          save();
          writer.throw_interrupted(signal);
        }
        piece(real);
        writer.completed(real);
        if (writer.due()) save();
      });
    });
  } catch (const interrupted&) {
    throw;
  } catch (...) {
    try {
      save();  // the chunks completed before the failure are kept
    } catch (...) {
      // the failure itself matters more
    }
    throw;
  }
  save();
  // A signal after the last piece: the work is saved, and the program still stops as asked.
  if (const int signal = interrupt_guard::pending()) writer.throw_interrupted(signal);
}

}  // namespace mpiproc::detail
