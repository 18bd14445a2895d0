#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/checkpoint_file.hpp>
#include <mpiproc/error.hpp>

#include <boost/crc.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <sstream>
#include <system_error>
#include <thread>

namespace mpiproc::detail {

// File layout (every integer little-endian, as this machine writes it; ranks share one layout):
//   magic      16 bytes "mpiproc ckpt v2\n" (v1 encoded a vector of trivially copyable results
//              through Boost.Serialization, v2 as its items, as detail/bytes.hpp does)
//   length     u64, the bytes of the body
//   body       the fields below
//   checksum   u32, CRC-32 of the body
// body: role u8 (0 merged, 1 rank file); call, range, schedule, result, tag (each u64 length +
// bytes); run u64 and rank i32 (rank files); absorbed runs (u64 count + u64 each; merged file);
// runs (u64 count + offset, count, stride as i64 each); payload (u64 length + bytes).

namespace {

constexpr char magic[16] = {'m', 'p', 'i', 'p', 'r', 'o', 'c', ' ', 'c', 'k', 'p', 't', ' ', 'v', '2', '\n'};
constexpr std::uint8_t role_merged = 0, role_part = 1;

std::string system_message(int code) { return std::system_category().message(code); }

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw error("mpiproc: checkpoint file " + file.string() + " " + what +
              "; it was not used. Delete it (and its .part- files) to start the call over");
}

// The body's fields are the fields of one message in the one encoding (detail/bytes.hpp).
template <class T>
void put(std::string& out, T value) {
  append_field(out, value);
}

void put_text(std::string& out, const std::string& text) { append_field(out, text); }

class reader {
 public:
  reader(const std::filesystem::path& file, const std::string& body) : file_(file), in_(std::string_view(body)) {}
  template <class T>
  T get() {
    try {
      return in_.get<T>();
    } catch (const error&) {
      fail(file_, "is malformed (a field runs past its end)");
    }
  }
  std::string text() { return get<std::string>(); }
  bool done() const noexcept { return in_.done(); }

 private:
  const std::filesystem::path& file_;
  byte_reader in_;
};

std::string encode(std::uint8_t role, const checkpoint_identity& id, std::uint64_t run, int rank,
                   const std::vector<std::uint64_t>& absorbed, const checkpoint_record& record) {
  std::string body;
  put(body, role);
  for (const std::string* field : {&id.call, &id.range, &id.schedule, &id.result, &id.tag}) put_text(body, *field);
  put(body, run);
  put<std::int32_t>(body, rank);
  put<std::uint64_t>(body, absorbed.size());
  for (auto a : absorbed) put(body, a);
  put<std::uint64_t>(body, record.runs.size());
  for (const chunk& c : record.runs) {
    put(body, c.offset);
    put(body, c.count);
    put(body, c.stride);
  }
  put_text(body, record.payload);
  boost::crc_32_type crc;
  crc.process_bytes(body.data(), body.size());
  std::string file(magic, sizeof magic);
  put<std::uint64_t>(file, body.size());
  file += body;
  put<std::uint32_t>(file, crc.checksum());
  return file;
}

struct decoded {
  std::uint8_t role = 0;
  std::uint64_t run = 0;
  std::vector<std::uint64_t> absorbed;
  checkpoint_record record;
};

decoded decode(const std::filesystem::path& file, const checkpoint_identity& id) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot be read (" + system_message(errno) + ")");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() >= sizeof magic && std::memcmp(bytes.data(), magic, sizeof magic - 2) == 0 &&
      bytes.compare(sizeof magic - 2, 2, "1\n") == 0)
    fail(file, "was written by an earlier mpiproc (checkpoint format v1)");
  if (bytes.size() < sizeof magic || std::memcmp(bytes.data(), magic, sizeof magic) != 0)
    fail(file, "is not an mpiproc checkpoint (no header)");
  constexpr std::size_t framing = sizeof magic + sizeof(std::uint64_t) + sizeof(std::uint32_t);
  if (bytes.size() < framing) fail(file, "is truncated");
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data() + sizeof magic, sizeof length);
  if (length != bytes.size() - framing)
    fail(file, "is truncated or extended (" + std::to_string(bytes.size()) + " bytes where the header says " +
                   std::to_string(length + framing) + ")");
  const std::string body = bytes.substr(sizeof magic + sizeof length, length);
  std::uint32_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - sizeof stored, sizeof stored);
  boost::crc_32_type crc;
  crc.process_bytes(body.data(), body.size());
  if (crc.checksum() != stored) fail(file, "is corrupted (its CRC-32 checksum does not match)");

  reader r(file, body);
  decoded out;
  out.role = r.get<std::uint8_t>();
  const char* names[] = {"call", "range", "schedule", "result type", "tag"};
  const std::string* mine[] = {&id.call, &id.range, &id.schedule, &id.result, &id.tag};
  for (int k = 0; k < 5; ++k) {
    const std::string theirs = r.text();
    if (theirs != *mine[k])
      throw usage_error("mpiproc: checkpoint " + file.string() + " was written by another call: its " + names[k] +
                        " is '" + theirs + "', this call's is '" + *mine[k] +
                        "'. Give this call another checkpoint path (or tag), or delete the file to start over");
  }
  out.run = r.get<std::uint64_t>();
  r.get<std::int32_t>();
  // Counts are checked against the body's size first, so a bad count cannot allocate much.
  const auto absorbed = r.get<std::uint64_t>();
  if (absorbed > body.size()) fail(file, "is malformed (a count is too large)");
  for (std::uint64_t k = 0; k < absorbed; ++k) out.absorbed.push_back(r.get<std::uint64_t>());
  const auto runs = r.get<std::uint64_t>();
  if (runs > body.size()) fail(file, "is malformed (a count is too large)");
  for (std::uint64_t k = 0; k < runs; ++k) {
    chunk c;
    c.offset = r.get<std::int64_t>();
    c.count = r.get<std::int64_t>();
    c.stride = r.get<std::int64_t>();
    if (c.offset < 0 || c.count < 1 || c.stride < 1) fail(file, "is malformed (a run of positions is invalid)");
    out.record.runs.push_back(c);
  }
  out.record.payload = r.text();
  if (!r.done()) fail(file, "is malformed (bytes after its payload)");
  return out;
}

/// Writes `bytes` to `file` so that it is never seen half written: a temporary file next to it,
/// fsync, rename over it, fsync of the folder (so the rename itself survives a crash).
void write_durably(const std::filesystem::path& file, const std::string& bytes) {
  const std::filesystem::path temporary = file.string() + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw error("mpiproc: cannot write checkpoint " + temporary.string() + ": " + system_message(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int code = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      throw error("mpiproc: cannot write checkpoint " + temporary.string() + ": " + system_message(code));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int code = errno;
    ::unlink(temporary.c_str());
    throw error("mpiproc: cannot flush checkpoint " + temporary.string() + ": " + system_message(code));
  }
  if (::rename(temporary.c_str(), file.c_str()) != 0)
    throw error("mpiproc: cannot rename " + temporary.string() + " to " + file.string() + ": " + system_message(errno));
  const std::filesystem::path folder = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::string hex(std::uint64_t v) {
  std::ostringstream out;
  out << std::hex << v;
  return out.str();
}

std::atomic<int> received_signal{0};

extern "C" void on_interrupt(int signal) { received_signal.store(signal, std::memory_order_relaxed); }

const char* signal_name(int signal) {
  if (signal == SIGTERM) return "SIGTERM";
  if (signal == SIGUSR1) return "SIGUSR1";
  return "a signal";
}

}  // namespace

checkpoint_contents read_checkpoint(const std::filesystem::path& path, const checkpoint_identity& id) {
  checkpoint_contents out;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    decoded main = decode(path, id);
    if (main.role != role_merged) fail(path, "is a rank file, not a merged checkpoint");
    out.has_main = true;
    out.main = std::move(main.record);
    out.absorbed = std::move(main.absorbed);
  }
  const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::string base = path.filename().string();
  const std::string part_prefix = base + ".part-";
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    const bool temporary = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
    if (temporary && name.compare(0, base.size(), base) == 0) {
      out.files.push_back(entry.path());  // a write that a kill cut short: never renamed, never used
      continue;
    }
    if (name.compare(0, part_prefix.size(), part_prefix) != 0) continue;
    out.files.push_back(entry.path());
    decoded part = decode(entry.path(), id);
    if (part.role != role_part) fail(entry.path(), "is a merged checkpoint, not a rank file");
    if (std::find(out.absorbed.begin(), out.absorbed.end(), part.run) != out.absorbed.end()) continue;
    out.parts.push_back(std::move(part.record));
    out.part_runs.push_back(part.run);
  }
  return out;
}

void write_checkpoint_main(const std::filesystem::path& path, const checkpoint_identity& id,
                           const checkpoint_record& merged, const std::vector<std::uint64_t>& absorbed) {
  write_durably(path, encode(role_merged, id, 0, -1, absorbed, merged));
}

std::filesystem::path checkpoint_part_path(const std::filesystem::path& path, std::uint64_t run, int rank) {
  return path.string() + ".part-" + hex(run) + "-" + std::to_string(rank);
}

void write_checkpoint_part(const std::filesystem::path& part, const checkpoint_identity& id, std::uint64_t run,
                           int rank, const checkpoint_record& record) {
  write_durably(part, encode(role_part, id, run, rank, {}, record));
}

void for_each_span_in_order(const std::vector<const checkpoint_record*>& records,
                            const std::function<void(std::size_t, std::int64_t, std::int64_t, std::int64_t)>& span) {
  struct cursor {
    std::int64_t position, left, stride, item;
    std::size_t record;
    bool operator>(const cursor& o) const noexcept { return position > o.position; }
  };
  std::priority_queue<cursor, std::vector<cursor>, std::greater<>> heap;
  for (std::size_t r = 0; r < records.size(); ++r) {
    std::int64_t item = 0;
    for (const chunk& c : records[r]->runs) {
      heap.push({c.offset, c.count, c.stride, item, r});
      item += c.count;
    }
  }
  std::int64_t next_free = 0;  // every position below was emitted
  while (!heap.empty()) {
    cursor c = heap.top();
    heap.pop();
    if (c.position < next_free)
      throw error("mpiproc: checkpoint files record position " + std::to_string(c.position) +
                  " twice; they were not used. Delete them to start over");
    std::int64_t take = 1;
    if (c.stride == 1)
      take = heap.empty() ? c.left : std::max<std::int64_t>(1, std::min(c.left, heap.top().position - c.position));
    span(c.record, c.item, c.position, take);
    next_free = c.position + (take - 1) * c.stride + 1;
    c.position += take * c.stride;
    c.item += take;
    c.left -= take;
    if (c.left > 0) heap.push(c);
  }
}

remaining_positions::remaining_positions(std::int64_t n, const std::vector<chunk>& done) {
  std::int64_t at = 0;
  auto gap = [&](std::int64_t first, std::int64_t last) {
    if (last <= first) return;
    real_.push_back(first);
    virtual_.push_back(size_);
    length_.push_back(last - first);
    size_ += last - first;
  };
  for (const chunk& c : done) {
    gap(at, c.offset);
    at = c.offset + c.count;
  }
  gap(at, n);
}

namespace {
struct sigaction previous_term {
}, previous_usr1{};  // the handlers a guard replaced
}  // namespace

interrupt_guard::interrupt_guard() {
  received_signal.store(0, std::memory_order_relaxed);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;  // a second signal acts as without a handler
  sigaction(SIGTERM, &action, &previous_term);
  sigaction(SIGUSR1, &action, &previous_usr1);
}

interrupt_guard::~interrupt_guard() {
  sigaction(SIGTERM, &previous_term, nullptr);
  sigaction(SIGUSR1, &previous_usr1, nullptr);
}

int interrupt_guard::pending() noexcept { return received_signal.load(std::memory_order_relaxed); }

/// The thread that writes a rank file while the rank computes. It writes the latest record handed
/// to it; records handed over during a write replace each other.
struct checkpoint_writer::background {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<checkpoint_record> pending;
  bool writing = false;
  bool stopping = false;
  std::thread thread;

  void run(const checkpoint_writer& owner) {
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return stopping || pending; });
      if (!pending) return;
      checkpoint_record record = std::move(*pending);
      pending.reset();
      writing = true;
      lock.unlock();
      try {
        write_checkpoint_part(owner.part_, owner.id_, owner.run_, owner.rank_, record);
      } catch (...) {
        // A later save (at a failure or an interruption) writes again and reports its own error.
      }
      lock.lock();
      writing = false;
      changed.notify_all();
    }
  }
};

checkpoint_writer::checkpoint_writer(const communicator& comm, std::filesystem::path path, checkpoint_identity id,
                                     std::uint64_t run, std::int64_t n, const std::vector<chunk>& done,
                                     std::chrono::milliseconds every)
    : path_(std::move(path)),
      part_(checkpoint_part_path(path_, run, comm.rank())),
      id_(std::move(id)),
      run_(run),
      rank_(comm.rank()),
      remaining_(n, done),
      piece_(std::max<std::int64_t>(1, (remaining_.size() + 32 * comm.size() - 1) / (32 * comm.size()))),
      every_(every),
      next_write_(std::chrono::steady_clock::now() + every) {}

checkpoint_writer::~checkpoint_writer() { stop(); }

void checkpoint_writer::completed(const chunk& run) {
  saved_all_ = false;
  // Runs that continue the last one merge into it, so a block schedule records one run per rank.
  if (!record_.runs.empty()) {
    chunk& last = record_.runs.back();
    if (last.stride == run.stride && last.offset + last.count * last.stride == run.offset) {
      last.count += run.count;
      return;
    }
    if (last.count == 1 && run.count == 1 && run.offset > last.offset && last.stride == 1) {
      // two single items of a strided schedule: a run with their distance as stride
      last.stride = run.offset - last.offset;
      last.count = 2;
      return;
    }
  }
  record_.runs.push_back(run);
}

void checkpoint_writer::save_later(const std::string& payload) {
  next_write_ = std::chrono::steady_clock::now() + every_;
  if (!background_) {
    background_ = std::make_unique<background>();
    background_->thread = std::thread([this] { background_->run(*this); });
  }
  checkpoint_record copy{record_.runs, payload};
  {
    const std::lock_guard guard(background_->mutex);
    background_->pending = std::move(copy);
  }
  background_->changed.notify_all();
}

void checkpoint_writer::save_now(const std::string& payload) {
  if (background_) {
    std::unique_lock lock(background_->mutex);
    background_->pending.reset();
    background_->changed.wait(lock, [&] { return !background_->writing; });
    background_->writing = true;  // the thread waits while this write runs
  }
  record_.payload = payload;
  try {
    write_checkpoint_part(part_, id_, run_, rank_, record_);
  } catch (...) {
    if (background_) {
      const std::lock_guard guard(background_->mutex);
      background_->writing = false;
    }
    throw;
  }
  if (background_) {
    const std::lock_guard guard(background_->mutex);
    background_->writing = false;
  }
  saved_all_ = true;
  next_write_ = std::chrono::steady_clock::now() + every_;
}

void checkpoint_writer::stop() noexcept {
  if (!background_) return;
  {
    const std::lock_guard guard(background_->mutex);
    background_->stopping = true;
    background_->pending.reset();  // a save that must reach the disk is a save_now
  }
  background_->changed.notify_all();
  if (background_->thread.joinable()) background_->thread.join();
  background_.reset();
}

void complete_checkpoint(const std::filesystem::path& path, const checkpoint_identity& id,
                         const checkpoint_record& whole, std::vector<std::uint64_t> absorbed, std::uint64_t run,
                         int ranks) {
  absorbed.push_back(run);
  write_checkpoint_main(path, id, whole, absorbed);
  for (int r = 0; r < ranks; ++r) {
    std::error_code ignored;  // most ranks never wrote one
    std::filesystem::remove(checkpoint_part_path(path, run, r), ignored);
  }
}

void checkpoint_writer::throw_interrupted(int signal) const {
  throw interrupted(std::string("mpiproc: interrupted by ") + signal_name(signal) + "; the completed work is in " +
                    path_.string() + ": run the same call again to resume");
}

std::uint64_t new_checkpoint_run() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device() ^
         static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

}  // namespace mpiproc::detail
