#include "node_memory.hpp"

#include <mpiproc/detail/check.hpp>

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <string>

namespace mpiproc::detail::node_memory {

void futex_wait(std::uint32_t* word, std::uint32_t expected, const deadline& until) {
  timespec relative{};
  timespec* timeout = nullptr;
  if (until) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*until - clock::now()).count();
    if (left <= 0) return;
    relative.tv_sec = static_cast<time_t>(left / 1'000'000'000);
    relative.tv_nsec = static_cast<long>(left % 1'000'000'000);
    timeout = &relative;
  }
  // Not FUTEX_PRIVATE: the word is in memory shared between processes.
  syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0);
}

void futex_wake_all(std::uint32_t* word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0); }

namespace {
/// Where rank 0's memory is, for the others: its pid and descriptor, and the file's identity (in
/// another pid namespace the same pid could be another process).
struct memory_ticket {
  std::int64_t pid = -1, fd = -1, device = 0, inode = 0;
};
}  // namespace

std::byte* map_anonymous(MPI_Comm comm, int rank, std::size_t total) {
  const char* choice = std::getenv("MPIPROC_SHARED_MEMORY");
  const bool wanted = !(choice && std::string(choice) == "window");
  memory_ticket ticket;
  int fd = -1;
  if (rank == 0 && wanted) {
    fd = static_cast<int>(::memfd_create("mpiproc", MFD_CLOEXEC));
    struct stat st {};
    if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(total)) == 0 && ::fstat(fd, &st) == 0)
      ticket = {::getpid(), fd, static_cast<std::int64_t>(st.st_dev), static_cast<std::int64_t>(st.st_ino)};
  }
  MPIPROC_CHECK(MPI_Bcast(&ticket, 4, MPI_INT64_T, 0, comm));
  if (rank != 0 && wanted && ticket.fd >= 0) {
    const std::string path = "/proc/" + std::to_string(ticket.pid) + "/fd/" + std::to_string(ticket.fd);
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || static_cast<std::int64_t>(st.st_dev) != ticket.device ||
                    static_cast<std::int64_t>(st.st_ino) != ticket.inode)) {
      ::close(fd);
      fd = -1;
    }
  }
  void* base = MAP_FAILED;
  if (fd >= 0 && ticket.fd >= 0) base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mine = base != MAP_FAILED ? 1 : 0;
  int everyone = 0;
  const int rc = MPI_Allreduce(&mine, &everyone, 1, MPI_INT, MPI_MIN, comm);
  if (fd >= 0) ::close(fd);  // every rank has opened it, or given up: the mappings keep the memory
  if (rc == MPI_SUCCESS && everyone) return static_cast<std::byte*>(base);
  if (base != MAP_FAILED) ::munmap(base, total);
  check(rc, "MPI_Allreduce");
  return nullptr;
}

}  // namespace mpiproc::detail::node_memory
