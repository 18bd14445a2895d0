
#include "communicator_state.hpp"
#include "queue_mailbox.hpp"
#include "queue_ring.hpp"

#include <mpiproc/detail/bytes.hpp>

#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t {
  op_put, op_get, op_try_get, op_close, op_state, op_try_put, op_task_done, op_join, op_nudge, op_returned,
  op_give_back, op_count
};
enum : std::uint64_t { got_item, got_nothing, got_end, put_closed, too_many_done, ask_holder };
// A holder's answers to op_give_back: the lent items it has not taken; the lease has not reached it
// yet (ask again); it sent them back itself (leaving: see ~queue_mailbox).
enum : std::uint64_t { given_back, not_yet, already_back };

// A rank that makes this many gets in a row, while no other rank gets, is lent up to lend_most
// items (at most lend_bytes of them) after the one it takes, so that a lone consumer does not pay
// a round trip per item.
constexpr unsigned lend_after = 8;
constexpr std::size_t lend_most = 64, lend_bytes = std::size_t{1} << 16;
}  // namespace

/// Rank 0's items, touched by its service thread and by rank 0's own calls, under the lock.
///
/// The items lent to a lone consumer are the front of the queue, in order, and only one rank holds
/// them (the holder), so that every get still takes the oldest item: a get from any other rank
/// first takes them back (ask_holder: the caller asks the holder's service thread for them and
/// returns them with op_returned), and calls wait while that is under way. Each lease has a number,
/// so that a holder asked before its lease's answer reached it says so (not_yet) rather than give
/// back nothing.
struct queue_mailbox::mailbox {
  std::mutex lock;
  std::deque<std::string> items;
  std::uint64_t capacity = 0;
  bool closed = false;
  std::uint64_t unfinished = 0;  // items put and not yet task_done (joinable queues)
  bool kept = false;             // the service thread may keep calls that a change lets through
  int holder = -1;               // the rank lent the items before `items`, if any
  std::uint64_t lease_number = 0;  // the last lease's
  bool reclaiming = false;       // a rank is taking them back from the holder
  int streak_rank = -1;          // the rank that made the last gets
  unsigned streak = 0;           // how many in a row

  explicit mailbox(std::uint64_t most) : capacity(most) {}

  /// The service thread's answer: nothing keeps the call until a change lets it through.
  std::optional<std::string> serve(int source, const std::string& request) {
    std::lock_guard guard(lock);
    if (byte_reader(request).number() == op_nudge) return std::string();
    std::optional<std::string> out = answer(source, request);
    kept = kept || !out;
    return out;
  }

  std::optional<std::string> answer(int source, const std::string& request) {
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
      case op_try_get: return take(source, op == op_get);
      case op_returned: {
        // The holder's items that it had not taken, back in front, in their order (each lease
        // comes back once: through a taker or from its holder leaving).
        if (in.number() != lease_number || holder < 0) throw error("mpiproc: a queue lease returned twice (a bug)");
        std::vector<std::string> back(in.number());
        for (auto& item : back) item = in.bytes();
        items.insert(items.begin(), std::make_move_iterator(back.begin()), std::make_move_iterator(back.end()));
        holder = -1;
        reclaiming = false;
        streak_rank = -1;
        return out.take();
      }
      case op_close: closed = true; return out.take();
      case op_state:
        if (reclaiming) return std::nullopt;  // the lent items are on their way back: count them then
        return out.number(closed).number(items.size()).number(capacity && items.size() >= capacity).number(
                                                                                     static_cast<std::uint64_t>(holder + 1))
            .take();
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

  std::optional<std::string> take(int source, bool wait) {
    byte_writer out;
    if (reclaiming) return std::nullopt;  // the lent items come back first: they are the oldest
    if (holder == source) {
      holder = -1;  // it asks only once it has taken every item lent to it
    } else if (holder >= 0) {
      reclaiming = true;
      return out.number(ask_holder).number(static_cast<std::uint64_t>(holder)).number(lease_number).take();
    }
    if (items.empty()) {
      if (closed) return out.number(got_end).take();
      if (wait) return std::nullopt;  // wait for an item
      return out.number(got_nothing).take();
    }
    streak = source == streak_rank ? streak + 1 : 1;
    streak_rank = source;
    out.number(got_item).bytes(items.front());
    items.pop_front();
    // Rank 0 takes its items under the lock; a queue with a capacity lends none, since a put that
    // waits for room must see an item go when it is taken.
    std::size_t lend = 0, bytes = 0;
    if (source != 0 && capacity == 0 && streak >= lend_after)
      while (lend < items.size() && lend < lend_most && bytes + items[lend].size() <= lend_bytes)
        bytes += items[lend++].size();
    if (lend == 0) return out.take();  // as long as a put's request: any item put can be taken
    out.number(++lease_number).number(lend);
    for (std::size_t i = 0; i < lend; ++i) out.bytes(items[i]);
    items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(lend));
    holder = source;
    return out.take();
  }
};

/// Items lent to this rank (not rank 0): its gets take them first. Its service thread gives back
/// those not yet taken when another rank wants the oldest item (op_give_back), and counts them
/// for size() (op_count).
struct queue_mailbox::lease {
  std::mutex lock;
  std::deque<std::string> items;
  std::uint64_t number = 0;  // the last lease that reached this rank
  bool held = false;         // rank 0 counts this rank as the holder of lease `number`
  bool sent_back = false;    // this rank returned lease `number` itself

  std::optional<std::string> serve(const std::string& request) {
    std::lock_guard guard(lock);
    byte_reader in(request);
    byte_writer out;
    if (in.number() == op_count) return out.number(items.size()).take();
    const std::uint64_t wanted = in.number();
    if (number < wanted) return out.number(not_yet).take();
    if (sent_back) return out.number(already_back).take();
    hand_back(out.number(given_back));
    return out.take();
  }

  /// Writes what op_returned carries (the lease's number, the items not taken) and lets them go.
  /// Under the lock.
  void hand_back(byte_writer& out) {
    out.number(number).number(items.size());
    for (const std::string& item : items) out.bytes(item);
    items.clear();
    held = false;
  }
};

namespace {
service_endpoint::handler served_by(const std::shared_ptr<queue_mailbox::mailbox>& box,
                                    const std::shared_ptr<queue_mailbox::lease>& lent) {
  if (box) return [box](int source, const std::string& request) { return box->serve(source, request); };
  return [lent](int, const std::string& request) { return lent->serve(request); };
}
}  // namespace

queue_mailbox::queue_mailbox(const communicator& comm, std::uint64_t capacity, bool joinable)
    : joinable_(joinable),
      box_(comm.rank() == 0 ? std::make_shared<mailbox>(capacity) : nullptr),
      lent_(comm.rank() == 0 ? nullptr : std::make_shared<lease>()),
      endpoint_(comm, 0, nullptr, served_by(box_, lent_)) {}

queue_mailbox::~queue_mailbox() {
  // A rank leaving with a lease returns it: its service stops once it leaves (at once, if an
  // exception unwinds), and another rank's get would then ask it in vain.
  if (!lent_ || !endpoint_.usable()) return;
  byte_writer back;
  {
    std::lock_guard guard(lent_->lock);
    if (!lent_->held) return;
    lent_->hand_back(back.number(op_returned));
    lent_->sent_back = true;
  }
  try {
    ask(back.take());
  } catch (const std::exception&) {  // the endpoint broke: nobody will ask for them
  }
}

std::string queue_mailbox::ask(const std::string& request, const deadline& until) {
  endpoint_.check_usable();
  if (box_) {
    // Rank 0's own calls need no message, unless they wait (the service thread keeps those).
    std::optional<std::string> answer;
    bool nudge = false;
    {
      std::lock_guard guard(box_->lock);
      answer = box_->answer(0, request);
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

std::uint64_t queue_mailbox::held_by(int holder) {
  if (holder < 0) return 0;
  if (holder == endpoint_.rank()) {
    std::lock_guard guard(lent_->lock);
    return lent_->items.size();
  }
  return byte_reader(*endpoint_.call(holder, byte_writer().number(op_count).take())).number();
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
  endpoint_.check_usable();
  if (lent_) {
    std::unique_lock guard(lent_->lock);
    if (!lent_->items.empty()) {
      const std::string item = std::move(lent_->items.front());
      lent_->items.pop_front();
      guard.unlock();
      std::memcpy(place(item.size()), item.data(), item.size());
      return outcome::item;
    }
    // Rank 0 takes this get as the sign that every lent item is taken (or it is taking them back).
    lent_->held = false;
  }
  for (;;) {
    byte_reader in(ask(byte_writer().number(wait ? op_get : op_try_get).take(), until));
    switch (in.number()) {
      case got_item: {
        const std::string item = in.bytes();
        if (!in.done()) {  // a lease: its number, then the items
          std::lock_guard guard(lent_->lock);
          lent_->number = in.number();
          lent_->held = true;
          lent_->sent_back = false;
          for (std::uint64_t i = 0, lent = in.number(); i < lent; ++i) lent_->items.push_back(in.bytes());
        }
        std::memcpy(place(item.size()), item.data(), item.size());
        return outcome::item;
      }
      case ask_holder: {
        // Another rank holds the oldest items: take them back from its service thread (it
        // answers whatever its rank does) and return them, then ask again. No deadline: the
        // items must go back either way, and no call here waits for anything but the holder's
        // rank storing its lease, which its get is doing.
        const int holder = static_cast<int>(in.number());
        const std::string give_back = byte_writer().number(op_give_back).number(in.number()).take();
        for (;;) {
          const std::string back = *endpoint_.call(holder, give_back);
          const std::uint64_t status = byte_reader(back).number();
          if (status == not_yet) {
            std::this_thread::yield();
            continue;
          }
          if (status == given_back) ask(byte_writer().number(op_returned).take() + back.substr(sizeof(std::uint64_t)));
          break;  // already_back: its holder returned it, and rank 0 keeps the next ask until then
        }
        continue;
      }
      case got_end: return outcome::ended;
      default: return outcome::timeout;
    }
  }
}

void queue_mailbox::close() { ask(byte_writer().number(op_close).take()); }

queue_mailbox::state_now queue_mailbox::state() {
  byte_reader in(ask(byte_writer().number(op_state).take()));
  state_now now{};
  now.closed = in.number() != 0;
  now.items = in.number();
  now.full = in.number() != 0;
  now.holder = static_cast<int>(in.number()) - 1;
  return now;
}

bool queue_mailbox::closed() { return state().closed; }

bool queue_mailbox::ended() {
  const state_now now = state();
  return now.closed && now.items == 0 && held_by(now.holder) == 0;
}

std::uint64_t queue_mailbox::size() {
  const state_now now = state();
  return now.items + held_by(now.holder);
}

bool queue_mailbox::full() { return state().full; }

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
