
#include "communicator_state.hpp"
#include "queue_mailbox.hpp"
#include "queue_ring.hpp"

#include <mpiproc/detail/bytes.hpp>

#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t { op_put, op_get, op_try_get, op_close, op_state, op_try_put, op_task_done, op_join, op_nudge };
enum : std::uint64_t { got_item, got_nothing, got_end, put_closed, too_many_done };

}  // namespace

/// Rank 0's items, touched by its service thread and by rank 0's own calls, under the lock.
struct queue_mailbox::mailbox {
  std::mutex lock;
  std::deque<std::string> items;
  std::uint64_t capacity = 0;
  bool closed = false;
  std::uint64_t unfinished = 0;  // items put and not yet task_done (joinable queues)
  bool kept = false;             // the service thread may keep calls that a change lets through

  explicit mailbox(std::uint64_t most) : capacity(most) {}

  /// The service thread's answer: nothing keeps the call until a change lets it through.
  std::optional<std::string> serve(const std::string& request) {
    std::lock_guard guard(lock);
    if (byte_reader(request).number() == op_nudge) return std::string();
    std::optional<std::string> out = answer(request);
    kept = kept || !out;
    return out;
  }

  std::optional<std::string> answer(const std::string& request) {
    byte_reader in(request);
    byte_writer out;
    const std::uint64_t op = in.number();
    switch (op) {
      case op_put:
      case op_try_put:
        if (closed) return out.number(put_closed).take();
        if (capacity && items.size() >= capacity) {
          if (op == op_try_put) return out.number(got_nothing).take();
          return std::nullopt;  // wait for room
        }
        items.push_back(in.bytes());
        ++unfinished;
        return out.number(got_item).take();
      case op_get:
      case op_try_get: {
        if (!items.empty()) {
          out.number(got_item).bytes(items.front());
          items.pop_front();
          return out.take();
        }
        if (closed) return out.number(got_end).take();
        if (op == op_get) return std::nullopt;  // wait for an item
        return out.number(got_nothing).take();
      }
      case op_close: closed = true; return out.take();
      case op_state: return out.number(closed).number(items.size()).number(capacity && items.size() >= capacity).take();
      case op_task_done:
        if (unfinished == 0) return out.number(too_many_done).take();
        --unfinished;
        return out.number(got_item).take();
      case op_join:
        if (unfinished > 0) return std::nullopt;  // kept until the last task_done
        return out.number(got_item).take();
      default: throw error("mpiproc: an unknown queue request (a bug)");
    }
  }
};

namespace {
/// Only rank 0 serves: a rank that serves nothing runs no service thread for the queue, which
/// would poll beside its own work.
service_endpoint::handler served_by(const std::shared_ptr<queue_mailbox::mailbox>& box) {
  if (!box) return {};
  return [box](int, const std::string& request) { return box->serve(request); };
}
}  // namespace

queue_mailbox::queue_mailbox(const communicator& comm, std::uint64_t capacity, bool joinable)
    : joinable_(joinable),
      box_(comm.rank() == 0 ? std::make_shared<mailbox>(capacity) : nullptr),
      endpoint_(comm, 0, nullptr, served_by(box_)) {}

queue_mailbox::~queue_mailbox() = default;

std::string queue_mailbox::ask(const std::string& request, const deadline& until) {
  if (box_) {
    // Rank 0's own calls need no message, unless they wait (the service thread keeps those).
    std::optional<std::string> answer;
    bool nudge = false;
    {
      std::lock_guard guard(box_->lock);
      answer = box_->answer(request);
      nudge = answer && box_->kept && byte_reader(request).number() != op_state;
      if (nudge) box_->kept = false;
    }
    // A change may let kept calls through: the service thread asks them again after the nudge.
    if (nudge) endpoint_.post_call(0, byte_writer().number(op_nudge).take());
    if (answer) return *answer;
  }
  auto answer = endpoint_.call(0, request, until);
  return answer ? *answer : byte_writer().number(got_nothing).take();
}

bool queue_mailbox::put(const void* data, std::size_t bytes, const deadline& until, bool wait) {
  const std::string_view item(static_cast<const char*>(data), bytes);
  // A put cancelled at its deadline either went in before (the answer says so) or never will.
  const std::uint64_t answer =
      byte_reader(ask(byte_writer().number(wait ? op_put : op_try_put).bytes(item).take(), wait ? until : std::nullopt))
          .number();
  if (answer == put_closed) throw usage_error("mpiproc::queue: put after close");
  return answer == got_item;
}

queue_core::outcome queue_mailbox::get(const std::function<void*(std::size_t bytes)>& place, const deadline& until,
                                       bool wait) {
  byte_reader in(ask(byte_writer().number(wait ? op_get : op_try_get).take(), until));
  switch (in.number()) {
    case got_item: {
      const std::string item = in.bytes();
      std::memcpy(place(item.size()), item.data(), item.size());
      return outcome::item;
    }
    case got_end: return outcome::ended;
    default: return outcome::timeout;
  }
}

void queue_mailbox::close() { ask(byte_writer().number(op_close).take()); }

bool queue_mailbox::closed() { return byte_reader(ask(byte_writer().number(op_state).take())).number() != 0; }

bool queue_mailbox::ended() {
  byte_reader in(ask(byte_writer().number(op_state).take()));
  const bool is_closed = in.number() != 0;
  return is_closed && in.number() == 0;
}

std::uint64_t queue_mailbox::size() {
  byte_reader in(ask(byte_writer().number(op_state).take()));
  in.number();
  return in.number();
}

bool queue_mailbox::full() {
  byte_reader in(ask(byte_writer().number(op_state).take()));
  in.number();
  in.number();
  return in.number() != 0;
}

void queue_mailbox::task_done() {
  if (!joinable_) throw usage_error("mpiproc::queue: task_done on a queue that is not a joinable_queue");
  if (byte_reader(ask(byte_writer().number(op_task_done).take())).number() == too_many_done)
    throw usage_error("mpiproc::joinable_queue: task_done() called more times than there were items put (as "
                      "Python's ValueError)");
}

bool queue_mailbox::join(const deadline& until) {
  if (!joinable_) throw usage_error("mpiproc::queue: join on a queue that is not a joinable_queue");
  return byte_reader(ask(byte_writer().number(op_join).take(), until)).number() == got_item;
}

std::unique_ptr<queue_core> make_queue_core(const communicator& comm, std::size_t slots, std::size_t payload,
                                            std::uint64_t capacity, bool joinable) {
  // Checked on every path, so that a program does not fail on one node only.
  if (slots == 0 || payload == 0) throw usage_error("mpiproc::queue: slots and slot_bytes must be at least 1");
  if (comm.state().shared_state_transport() == transport::messages) return std::make_unique<queue_mailbox>(comm, capacity, joinable);
  return std::make_unique<queue_ring>(comm, slots, payload, capacity, joinable);
}

}  // namespace mpiproc::detail
