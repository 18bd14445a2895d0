#include <mpiproc/detail/check.hpp>
#include <mpiproc/communicator.hpp>
#include <mpiproc/detail/collective.hpp>
#include <mpiproc/detail/schedule_loop.hpp>
#include <mpiproc/error.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mpiproc::detail {

namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h * 0x100000001b3ULL;
}

std::uint64_t text_hash(const char* s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ULL;
  return h;
}

std::string readable(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

const char* const schedule_names[] = {"block", "cyclic", "dynamic", "guided"};

/// The collective calls running on this rank, per communicator, and the calls begun on each (for
/// the debug mode's sequence numbers).
struct calls {
  std::mutex mutex;
  std::vector<MPI_Comm> running;
  std::map<MPI_Comm, std::uint64_t> begun;
};

calls& the_calls() {
  static calls c;
  return c;
}

/// MPIPROC_COLLECTIVE_TIMEOUT in seconds; 0 when unset (debug mode off).
double collective_timeout() {
  static const double seconds = [] {
    const char* text = std::getenv("MPIPROC_COLLECTIVE_TIMEOUT");
    if (!text || !*text) return 0.0;
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    if (*end != '\0' || !std::isfinite(value) || value <= 0)
      throw usage_error(std::string("MPIPROC_COLLECTIVE_TIMEOUT must be a number of seconds above 0, not '") + text + "'");
    return value;
  }();
  return seconds;
}

constexpr int rendezvous_tag = 32000;  // on mpiproc's private duplicate: no user message has it

struct arrival {
  std::uint64_t call = 0;  // this rank's calls on the communicator, counting this one
  char name[56] = {};
};

std::string ranks_list(const std::vector<int>& ranks) {
  std::string out;
  for (const int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

}  // namespace

std::uint64_t call_signature::hash() const noexcept {
  std::uint64_t h = text_hash(call);
  h = mix(h, count);
  h = mix(h, first);
  h = mix(h, static_cast<std::uint64_t>(schedule_kind));
  h = mix(h, static_cast<std::uint64_t>(chunk));
  h = mix(h, static_cast<std::uint64_t>(static_cast<std::int64_t>(root)));
  h = mix(h, static_cast<std::uint64_t>(static_cast<std::int64_t>(source)));
  // type_info's hash_code is a hash of the mangled name in GCC and Clang: the same in every process.
  h = mix(h, operation ? operation->hash_code() : 0);
  h = mix(h, result ? result->hash_code() : 0);
  h = mix(h, checkpointed ? 1 : 0);
  h = mix(h, options);
  return h;
}

std::string call_signature::describe() const {
  std::string out = std::string(call);
  if (source >= 0)
    out += " of items broadcast from rank " + std::to_string(source);
  else
    out += " over " + std::to_string(count) + " items";
  if (count > 0) out += " (first " + std::to_string(static_cast<std::int64_t>(first)) + ")";
  const int kind = std::clamp(schedule_kind, 0, 3);
  out += ", schedule " + std::string(schedule_names[kind]) + "(" + (chunk ? std::to_string(chunk) : "auto") + ")";
  out += root < 0 ? ", result on every rank" : ", result on rank " + std::to_string(root);
  if (operation) out += ", operation " + readable(*operation);
  if (result) out += (source >= 0 ? ", item type " : ", result type ") + readable(*result);
  if (checkpointed) out += ", with a checkpoint";
  if (options & 1) out += ", with progress";
  if (options & 2) out += ", with a chunk time limit";
  return out;
}

void require_mpi(const char* what) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    throw usage_error(std::string("mpiproc: ") + what + " after MPI was finalized (the mpiproc::environment ended)");
  if (!initialized) throw usage_error(std::string("mpiproc: ") + what + " before MPI was initialized; create an mpiproc::environment first");
}

namespace {
bool in_collective_call(MPI_Comm comm) noexcept {
  calls& c = the_calls();
  std::lock_guard guard(c.mutex);
  return std::find(c.running.begin(), c.running.end(), comm) != c.running.end();
}

/// The debug mode's check that every rank entered the call `name` (see collective_call); does
/// nothing unless MPIPROC_COLLECTIVE_TIMEOUT is set.
void check_all_ranks_enter(MPI_Comm comm, const char* name) {
  const double timeout = collective_timeout();
  if (timeout <= 0) return;
  int rank = 0, size = 1;
  MPIPROC_CHECK(MPI_Comm_rank(comm, &rank));
  MPIPROC_CHECK(MPI_Comm_size(comm, &size));
  arrival mine;
  {
    calls& c = the_calls();
    std::lock_guard guard(c.mutex);
    mine.call = ++c.begun[comm];
  }
  std::strncpy(mine.name, name, sizeof mine.name - 1);
  if (size == 1) return;
  // Every rank tells every other which call it entered, then waits for their word.
  std::vector<arrival> theirs(static_cast<std::size_t>(size));
  std::vector<MPI_Request> sends, receives(static_cast<std::size_t>(size), MPI_REQUEST_NULL);
  for (int r = 0; r < size; ++r) {
    if (r == rank) continue;
    sends.push_back(MPI_REQUEST_NULL);
    MPIPROC_CHECK(MPI_Isend(&mine, sizeof mine, MPI_BYTE, r, rendezvous_tag, comm, &sends.back()));
    MPIPROC_CHECK(MPI_Irecv(&theirs[static_cast<std::size_t>(r)], sizeof(arrival), MPI_BYTE, r, rendezvous_tag, comm,
                            &receives[static_cast<std::size_t>(r)]));
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  for (auto pause = std::chrono::microseconds(1);;) {
    int done = 0;
    MPIPROC_CHECK(MPI_Testall(size, receives.data(), &done, MPI_STATUSES_IGNORE));
    if (done) break;
    if (std::chrono::steady_clock::now() >= until) {
      std::vector<int> missing;
      for (int r = 0; r < size; ++r) {
        int arrived = 1;
        if (receives[static_cast<std::size_t>(r)] != MPI_REQUEST_NULL)
          MPIPROC_CHECK(MPI_Test(&receives[static_cast<std::size_t>(r)], &arrived, MPI_STATUS_IGNORE));
        if (!arrived) missing.push_back(r);
      }
      if (!missing.empty())
        throw usage_error("mpiproc (MPIPROC_COLLECTIVE_TIMEOUT=" + std::to_string(timeout) + "): rank " +
                          std::to_string(rank) + " waited " + std::to_string(timeout) + " s in collective call #" +
                          std::to_string(mine.call) + " (" + name + ") for rank(s) " + ranks_list(missing) +
                          ", which have not entered it; every rank of the communicator must make the same "
                          "collective calls in the same order");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
  MPIPROC_CHECK(MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE));
  for (int r = 0; r < size; ++r) {
    const arrival& a = theirs[static_cast<std::size_t>(r)];
    // Call numbers count per communicator handle, which MPI may reuse: only the names must agree.
    if (r == rank || std::strncmp(a.name, mine.name, sizeof mine.name) == 0) continue;
    throw usage_error("mpiproc (MPIPROC_COLLECTIVE_TIMEOUT): rank " + std::to_string(rank) + " entered collective call #" +
                      std::to_string(mine.call) + " (" + mine.name + ") while rank " + std::to_string(r) +
                      " entered call #" + std::to_string(a.call) + " (" + std::string(a.name, strnlen(a.name, sizeof a.name)) +
                      "); every rank of the communicator must make the same collective calls in the same order");
  }
}

}  // namespace

void enter_construction(MPI_Comm comm, const char* what) {
  require_mpi(what);
  if (in_collective_call(comm))
    throw usage_error(std::string("mpiproc: ") + what +
                      " made inside a collective call (a map's function, a role's work) on the communicator it is "
                      "made over; make it before the call");
  check_all_ranks_enter(comm, what);
}

collective_call::collective_call(MPI_Comm comm, const char* name) : comm_(comm) { enter(name, nullptr); }

collective_call::collective_call(const communicator& loop_comm, const char* name) : comm_(loop_comm.native()) {
  enter(name, &loop_comm);
}

void collective_call::enter(const char* name, const communicator* loop_comm) {
  require_mpi(name);
  if (in_collective_call(comm_))
    throw usage_error(std::string("mpiproc: ") + name +
                      " started inside another collective call on the same communicator (e.g. a map inside a "
                      "map's function); make every rank call it outside, or use another communicator for the inner one");
  check_all_ranks_enter(comm_, name);
  if (loop_comm) chunk_source::prepare(*loop_comm);
  calls& c = the_calls();
  std::lock_guard guard(c.mutex);
  c.running.push_back(comm_);
}

collective_call::~collective_call() {
  calls& c = the_calls();
  std::lock_guard guard(c.mutex);
  if (const auto it = std::find(c.running.begin(), c.running.end(), comm_); it != c.running.end()) c.running.erase(it);
}

}  // namespace mpiproc::detail
