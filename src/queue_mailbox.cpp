#include <mpiproc/detail/queue_mailbox.hpp>
#include <mpiproc/detail/queue_ring.hpp>
#include <mpiproc/detail/wire.hpp>

#include <cstring>
#include <deque>
#include <memory>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t { op_put, op_get, op_try_get, op_close, op_state };
enum : std::uint64_t { got_item, got_nothing, got_end, put_closed };

/// Rank 0's items, touched only by its service thread.
struct mailbox {
  std::deque<std::string> items;
  std::uint64_t capacity = 0;
  bool closed = false;

  std::optional<std::string> answer(const std::string& request) {
    wire_reader in(request);
    wire_writer out;
    const std::uint64_t op = in.number();
    switch (op) {
      case op_put:
        if (closed) return out.number(put_closed).take();
        if (capacity && items.size() >= capacity) return std::nullopt;  // wait for room
        items.push_back(in.bytes());
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
      case op_state: return out.number(closed).number(items.size()).take();
      default: throw error("mpiproc: an unknown queue request (a bug)");
    }
  }
};
}  // namespace

queue_mailbox::queue_mailbox(MPI_Comm comm, std::uint64_t capacity)
    : segment_(comm, 0, nullptr, [box = std::make_shared<mailbox>(mailbox{{}, capacity, false})](int, const std::string& request) {
        return box->answer(request);
      }) {}

std::string queue_mailbox::ask(const std::string& request, const deadline& until) {
  auto answer = segment_.call(0, request, until);
  return answer ? *answer : wire_writer().number(got_nothing).take();
}

void queue_mailbox::put(const void* data, std::size_t bytes) {
  const std::string item(static_cast<const char*>(data), bytes);
  if (wire_reader(ask(wire_writer().number(op_put).bytes(item).take())).number() == put_closed)
    throw usage_error("mpiproc::queue: put after close");
}

queue_core::outcome queue_mailbox::get(const std::function<void*(std::size_t bytes)>& place, const deadline& until,
                                       bool wait) {
  wire_reader in(ask(wire_writer().number(wait ? op_get : op_try_get).take(), until));
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

void queue_mailbox::close() { ask(wire_writer().number(op_close).take()); }

bool queue_mailbox::closed() { return wire_reader(ask(wire_writer().number(op_state).take())).number() != 0; }

bool queue_mailbox::ended() {
  wire_reader in(ask(wire_writer().number(op_state).take()));
  const bool is_closed = in.number() != 0;
  return is_closed && in.number() == 0;
}

std::uint64_t queue_mailbox::size() {
  wire_reader in(ask(wire_writer().number(op_state).take()));
  in.number();
  return in.number();
}

std::unique_ptr<queue_core> make_queue_core(MPI_Comm comm, std::size_t slots, std::size_t payload,
                                            std::uint64_t capacity) {
  // Checked on every path, so that a program does not fail on one node only.
  if (slots == 0 || payload == 0) throw usage_error("mpiproc::queue: slots and slot_bytes must be at least 1");
  if (use_messages(comm)) return std::make_unique<queue_mailbox>(comm, capacity);
  return std::make_unique<queue_ring>(comm, slots, payload, capacity);
}

}  // namespace mpiproc::detail
