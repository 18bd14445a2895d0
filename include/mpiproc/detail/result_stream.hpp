#pragma once

// The messages of imap and imap_unordered (imap.hpp): every rank computes its chunks in pieces
// and sends each piece's results to the consumer rank as soon as it is done; the consumer calls
// the user's function on them. Credits bound what is in flight: a rank sends a piece only while it
// has fewer than stream_window pieces the consumer has not yet handed to the user's function, so
// the consumer's memory stays within that window whatever the number of results.

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/schedule_loop.hpp>

#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpiproc::detail {

/// Pieces a rank may have sent that the consumer has not taken yet (a piece taken is credited
/// back at once in completion order, once handed on in input order).
inline constexpr int stream_window = 4;

/// The most results in one piece: 64 Ki, and at most 1 MiB of trivially copyable results; 1 Ki
/// of other results (their size is not known in advance).
template <class R>
constexpr std::int64_t most_in_piece() {
  if constexpr (travels_raw<R>)
    return static_cast<std::int64_t>(std::clamp<std::size_t>((std::size_t{1} << 20) / sizeof(R), 1, 65536));
  else
    return 1024;
}

/// The head of a piece's message: the positions its results are at, then the results (each as
/// append_field writes it). A count below 0 ends the sender's pieces; offset is then 1 if the
/// sender's part failed.
struct piece_header {
  std::int64_t offset = 0, count = 0, stride = 1;
};

/// How many results the next piece holds: it grows while pieces take under 2 ms and shrinks past
/// 20 ms, so that light results travel in large messages and heavy ones reach the consumer soon.
class piece_sizer {
 public:
  explicit piece_sizer(std::int64_t most) : most_(most) {}
  std::int64_t next() {
    restart();
    return size_;
  }
  /// Times the piece from now (after a wait that is not its work).
  void restart() { started_ = std::chrono::steady_clock::now(); }
  void done() {
    const auto took = std::chrono::steady_clock::now() - started_;
    if (took < std::chrono::milliseconds(2)) size_ = std::min(most_, size_ * 2);
    else if (took > std::chrono::milliseconds(20)) size_ = std::max<std::int64_t>(1, size_ / 2);
  }

 private:
  std::int64_t most_, size_ = 16;
  std::chrono::steady_clock::time_point started_;
};

/// Calls piece(p) for consecutive pieces p of `c`, sized by `sizer`.
template <class Piece>
void for_each_piece(const chunk& c, piece_sizer& sizer, Piece&& piece) {
  for (std::int64_t at = 0; at < c.count;) {
    const chunk p{c.offset + at * c.stride, std::min(sizer.next(), c.count - at), c.stride};
    piece(p);
    sizer.done();
    at += p.count;
  }
}

/// Thrown out of the consumer's work once another rank's part failed: its results are dropped,
/// and the failure agreement reports that rank's error.
struct stream_stopped {};

/// A rank's side other than the consumer's: sends pieces, each once the consumer has room for it.
class piece_sender {
 public:
  piece_sender(MPI_Comm comm, int consumer);
  piece_sender(const piece_sender&) = delete;
  piece_sender& operator=(const piece_sender&) = delete;
  /// Without finish() (MPI failed): waits for nothing.
  ~piece_sender() = default;

  /// The buffer of the next piece, holding its header for `p` (waits for a credit first).
  std::string& begin(const chunk& p);
  /// Sends the piece begun, with the results appended to its buffer.
  void send();
  /// Ends this rank's pieces (`failed`: its part failed) and waits until the consumer took them all.
  void finish(bool failed);

 private:
  MPI_Comm comm_;
  int consumer_;
  int credits_ = stream_window;
  std::size_t slot_ = 0;  // the buffer begun
  std::array<std::string, stream_window> buffers_;
  std::array<MPI_Request, stream_window> requests_;
};

/// The consumer's side of the messages: takes the other ranks' pieces and credits each back once
/// its results are handed on. Not typed: stream_consumer reads the results.
class piece_receiver {
 public:
  piece_receiver(MPI_Comm comm, int ranks);

  /// Whether a rank may still send a piece.
  bool open() const noexcept { return senders_ > 0; }
  /// The next message from another rank, into `bytes` (waiting for one if `wait`); its sender,
  /// or -1 if none came. An end of a sender's pieces comes back as a piece with a negative count.
  int receive(std::string& bytes, bool wait);
  /// Lets `rank` send one more piece.
  void credit(int rank);

 private:
  MPI_Comm comm_;
  int senders_;
};

/// The results of a piece in its message, in order.
template <class R>
class piece_reader {
 public:
  explicit piece_reader(std::string bytes) : bytes_(std::move(bytes)) {
    std::memcpy(&head_, bytes_.data(), sizeof head_);
    left_ = head_.count;
  }
  const piece_header& head() const noexcept { return head_; }
  /// The next result; only while left() > 0.
  R take() {
    --left_;
    if constexpr (travels_raw<R>) {
      R value;
      std::memcpy(static_cast<void*>(&value), bytes_.data() + at_, sizeof(R));
      at_ += sizeof(R);
      return value;
    } else {
      std::uint64_t length = 0;
      std::memcpy(&length, bytes_.data() + at_, sizeof length);
      at_ += sizeof length;
      R value = from_bytes<R>(bytes_.data() + at_, static_cast<std::size_t>(length));
      at_ += static_cast<std::size_t>(length);
      return value;
    }
  }
  std::int64_t left() const noexcept { return left_; }
  /// Gives the message's bytes back (to receive the next message into their room).
  std::string release() noexcept { return std::move(bytes_); }
  /// The position of the next result.
  std::int64_t next() const noexcept { return head_.offset + (head_.count - left_) * head_.stride; }

 private:
  std::string bytes_;
  piece_header head_;
  std::size_t at_ = sizeof(piece_header);
  std::int64_t left_ = 0;
};

/// The consumer's side: hands every result to deliver(position, result), its own as it computes
/// them and the other ranks' as they arrive; in completion order, or in input order (`ordered`),
/// holding at most stream_window pieces per rank that came early. After a failure (`fail`, or a
/// rank's pieces ending in one) it drops the rest.
template <class R, class Deliver>
class stream_consumer {
 public:
  stream_consumer(MPI_Comm comm, int rank, int ranks, bool ordered, Deliver& deliver)
      : receiver_(comm, ranks), rank_(rank), ordered_(ordered), deliver_(deliver),
        early_(ordered ? static_cast<std::size_t>(ranks) : 0) {}

  /// Computes this rank's piece `p` through form(p, use), handing on its results; throws
  /// stream_stopped instead once another rank failed.
  template <class Form>
  void compute(const Form& form, const chunk& p, piece_sizer& sizer) {
    take_arrived();
    if (failed_) throw stream_stopped{};
    sizer.restart();
    if (!ordered_ || (early(rank_).empty() && p.offset == front_ && (p.stride == 1 || p.count == 1))) {
      std::int64_t at = p.offset;
      form(p, [&](auto&& value) {
        deliver_(at, std::forward<decltype(value)>(value));
        at += p.stride;
      });
      if (ordered_) {
        front_ = p.offset + p.count;
        deliver_early();
      }
      return;
    }
    // Its turn has not come: kept, as an arriving piece is, once there is room for it.
    while (early(rank_).size() >= stream_window && !failed_) take_one(true);
    sizer.restart();
    std::string bytes(sizeof(piece_header), '\0');
    const piece_header head{p.offset, p.count, p.stride};
    std::memcpy(bytes.data(), &head, sizeof head);
    form(p, [&](auto&& value) { append_field(bytes, static_cast<const R&>(value)); });
    if (failed_) return;
    early(rank_).emplace_back(std::move(bytes));
    deliver_early();
  }
  /// Takes what the other ranks sent so far, without waiting.
  void take_arrived() {
    while (take_one(false)) {
    }
  }
  /// Takes every piece until every other rank ended its pieces.
  void drain() {
    while (receiver_.open()) take_one(true);
  }
  /// This rank's part failed: drop what came early and what still comes.
  void fail() {
    failed_ = true;
    for (int r = 0; r < static_cast<int>(early_.size()); ++r) {
      if (r != rank_)
        for (std::size_t k = 0; k < early(r).size(); ++k) receiver_.credit(r);
      early(r).clear();
    }
  }
  bool failed() const noexcept { return failed_; }
  /// The next position in input order (ordered).
  std::int64_t front() const noexcept { return front_; }

 private:
  std::deque<piece_reader<R>>& early(int rank) { return early_[static_cast<std::size_t>(rank)]; }

  /// One message from another rank, waiting for it if `wait`; false if none came.
  bool take_one(bool wait) {
    if (wait && !receiver_.open())  // every rank ended, yet a result is missing
      throw error("mpiproc: imap: results missing after every rank ended its part (a bug)");
    const int from = receiver_.receive(buffer_, wait);
    if (from < 0) return false;
    piece_reader<R> piece(std::move(buffer_));
    if (piece.head().count < 0) {
      if (piece.head().offset != 0) fail();
    } else if (failed_) {
      receiver_.credit(from);
    } else if (!ordered_) {
      // Credited first: the sender computes its next piece while this one is handed on.
      receiver_.credit(from);
      for (std::int64_t at = piece.next(); piece.left() > 0; at += piece.head().stride) deliver_(at, piece.take());
    } else {
      early(from).push_back(std::move(piece));
      deliver_early();
      return true;
    }
    buffer_ = piece.release();  // its room serves the next message
    return true;
  }

  /// Hands on every result that came early and whose turn it is.
  void deliver_early() {
    for (bool moved = true; moved && !failed_;) {
      moved = false;
      for (int r = 0; r < static_cast<int>(early_.size()); ++r) {
        auto& queue = early(r);
        while (!queue.empty() && queue.front().next() == front_) {
          piece_reader<R>& head = queue.front();
          // A contiguous piece hands on all its results; a strided one one result, for the others' turn.
          do {
            deliver_(front_, head.take());
            ++front_;
          } while (head.left() > 0 && head.head().stride == 1);
          moved = true;
          if (head.left() == 0) {
            queue.pop_front();
            if (r != rank_) receiver_.credit(r);
          }
        }
      }
    }
  }

  piece_receiver receiver_;
  int rank_;
  bool ordered_;
  Deliver& deliver_;
  std::vector<std::deque<piece_reader<R>>> early_;  // ordered: each rank's pieces that came early
  std::int64_t front_ = 0;                           // ordered: the next position to hand on
  bool failed_ = false;
  std::string buffer_;
};

}  // namespace mpiproc::detail
