#include <mpiproc/detail/list_store.hpp>
#include <mpiproc/detail/wire.hpp>

#include <algorithm>
#include <memory>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t { op_append, op_extend, op_insert, op_get, op_set, op_set_if, op_pop, op_size, op_reverse,
                       op_clear, op_items };

/// Rank 0's list, touched only by its service thread.
struct sequence {
  std::vector<std::string> items;
  std::uint64_t version = 1;

  /// `index` from the front (or from the end, below 0), checked against the items (or, to insert,
  /// clamped to them as Python does).
  std::size_t position(std::uint64_t raw, bool inserting) const {
    const auto n = static_cast<std::int64_t>(items.size());
    auto index = static_cast<std::int64_t>(raw);
    if (index < 0) index += n;
    if (inserting) return static_cast<std::size_t>(std::clamp<std::int64_t>(index, 0, n));
    if (index < 0 || index >= n)
      throw index_error("mpiproc::shared_list: index " + std::to_string(static_cast<std::int64_t>(raw)) +
                        " out of range for a list of " + std::to_string(n));
    return static_cast<std::size_t>(index);
  }

  std::string answer(const std::string& request) {
    wire_reader in(request);
    wire_writer out;
    const std::uint64_t op = in.number();
    switch (op) {
      case op_append: items.push_back(in.bytes()); break;
      case op_extend:
        for (std::uint64_t n = in.number(); n > 0; --n) items.push_back(in.bytes());
        break;
      case op_insert: {
        const std::size_t at = position(in.number(), true);
        items.insert(items.begin() + static_cast<std::ptrdiff_t>(at), in.bytes());
        break;
      }
      case op_get: return out.bytes(items[position(in.number(), false)]).number(version).take();
      case op_set: {
        const std::size_t at = position(in.number(), false);
        items[at] = in.bytes();
        break;
      }
      case op_set_if: {
        const std::size_t at = position(in.number(), false);
        if (in.number() != version) return out.number(0).take();
        items[at] = in.bytes();
        ++version;
        return out.number(1).take();
      }
      case op_pop: {
        const std::size_t at = position(in.number(), false);
        out.bytes(items[at]);
        items.erase(items.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      }
      case op_size: return out.number(items.size()).take();
      case op_reverse: std::reverse(items.begin(), items.end()); break;
      case op_clear: items.clear(); break;
      case op_items:
        out.number(items.size());
        for (const std::string& item : items) out.bytes(item);
        return out.take();
      default: throw error("mpiproc: an unknown shared list request (a bug)");
    }
    ++version;
    return out.take();
  }
};
}  // namespace

list_store::list_store(MPI_Comm comm, const std::vector<std::string>& initial)
    : segment_(comm, 0, nullptr, [list = std::make_shared<sequence>(sequence{initial, 1})](int, const std::string& request) -> std::optional<std::string> {
        return list->answer(request);
      }) {}

std::string list_store::ask(const std::string& request) { return *segment_.call(0, request); }

void list_store::append(const std::string& item) { ask(wire_writer().number(op_append).bytes(item).take()); }

void list_store::extend(const std::vector<std::string>& items) {
  wire_writer out;
  out.number(op_extend).number(items.size());
  for (const std::string& item : items) out.bytes(item);
  ask(out.take());
}

void list_store::insert(std::int64_t index, const std::string& item) {
  ask(wire_writer().number(op_insert).number(static_cast<std::uint64_t>(index)).bytes(item).take());
}

std::pair<std::string, std::uint64_t> list_store::get(std::int64_t index) {
  wire_reader in(ask(wire_writer().number(op_get).number(static_cast<std::uint64_t>(index)).take()));
  std::string item = in.bytes();
  return {std::move(item), in.number()};
}

void list_store::set(std::int64_t index, const std::string& item) {
  ask(wire_writer().number(op_set).number(static_cast<std::uint64_t>(index)).bytes(item).take());
}

bool list_store::set_if(std::int64_t index, std::uint64_t version, const std::string& item) {
  return wire_reader(ask(wire_writer().number(op_set_if).number(static_cast<std::uint64_t>(index)).number(version).bytes(item).take()))
             .number() != 0;
}

std::string list_store::pop(std::int64_t index) {
  return wire_reader(ask(wire_writer().number(op_pop).number(static_cast<std::uint64_t>(index)).take())).bytes();
}

std::uint64_t list_store::size() { return wire_reader(ask(wire_writer().number(op_size).take())).number(); }
void list_store::reverse() { ask(wire_writer().number(op_reverse).take()); }
void list_store::clear() { ask(wire_writer().number(op_clear).take()); }

std::vector<std::string> list_store::items() {
  wire_reader in(ask(wire_writer().number(op_items).take()));
  std::vector<std::string> all(in.number());
  for (std::string& item : all) item = in.bytes();
  return all;
}

}  // namespace mpiproc::detail
