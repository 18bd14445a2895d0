#include <mpiproc/detail/check.hpp>
#include <mpiproc/detail/result_stream.hpp>
#include <mpiproc/detail/transport.hpp>

namespace mpiproc::detail {

namespace {
// On the communicator's private duplicate, within one call (the others: failure.cpp, map.hpp,
// item_shares.hpp, call_monitor.cpp).
constexpr int piece_tag = 4;
constexpr int credit_tag = 5;

/// Waits for the consumer's next credit: how many pieces more `consumer` lets this rank send.
int next_credit(MPI_Comm comm, int consumer) {
  int granted = 0;
  MPIPROC_CHECK(MPI_Recv(&granted, 1, MPI_INT, consumer, credit_tag, comm, MPI_STATUS_IGNORE));
  return granted;
}
}  // namespace

piece_sender::piece_sender(MPI_Comm comm, int consumer) : comm_(comm), consumer_(consumer) {
  requests_.fill(MPI_REQUEST_NULL);
}

std::string& piece_sender::begin(const chunk& p) {
  if (credits_ == 0) credits_ += next_credit(comm_, consumer_);
  MPIPROC_CHECK(MPI_Wait(&requests_[slot_], MPI_STATUS_IGNORE));  // the buffer's last piece left
  std::string& out = buffers_[slot_];
  const piece_header head{p.offset, p.count, p.stride};
  out.assign(reinterpret_cast<const char*>(&head), sizeof head);
  return out;
}

void piece_sender::send() {
  const std::string& out = buffers_[slot_];
  MPIPROC_CHECK(MPI_Isend(out.data(), checked_count(out.size(), "imap: a piece's results in bytes"), MPI_BYTE,
                          consumer_, piece_tag, comm_, &requests_[slot_]));
  --credits_;
  slot_ = (slot_ + 1) % buffers_.size();
}

void piece_sender::finish(bool failed) {
  const piece_header end{failed ? 1 : 0, -1, 1};
  MPIPROC_CHECK(MPI_Send(&end, sizeof end, MPI_BYTE, consumer_, piece_tag, comm_));
  // Every credit comes back, so that none is left on the communicator for a later call to find.
  while (credits_ < stream_window) credits_ += next_credit(comm_, consumer_);
  MPIPROC_CHECK(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
}

piece_receiver::piece_receiver(MPI_Comm comm, int ranks) : comm_(comm), senders_(ranks - 1) {}

int piece_receiver::receive(std::string& bytes, bool wait) {
  MPI_Message message;
  MPI_Status status;
  if (wait) {
    MPIPROC_CHECK(MPI_Mprobe(MPI_ANY_SOURCE, piece_tag, comm_, &message, &status));
  } else {
    int arrived = 0;
    MPIPROC_CHECK(MPI_Improbe(MPI_ANY_SOURCE, piece_tag, comm_, &arrived, &message, &status));
    if (!arrived) return -1;
  }
  int size = 0;
  MPIPROC_CHECK(MPI_Get_count(&status, MPI_BYTE, &size));
  bytes.resize(static_cast<std::size_t>(size));
  MPIPROC_CHECK(MPI_Mrecv(bytes.data(), size, MPI_BYTE, &message, MPI_STATUS_IGNORE));
  piece_header head;
  if (bytes.size() < sizeof head) throw error("mpiproc: imap: a malformed piece of results (a bug)");
  std::memcpy(&head, bytes.data(), sizeof head);
  if (head.count < 0) --senders_;
  return status.MPI_SOURCE;
}

void piece_receiver::credit(int rank) {
  const int one = 1;
  MPIPROC_CHECK(MPI_Send(&one, 1, MPI_INT, rank, credit_tag, comm_));
}

}  // namespace mpiproc::detail
