#include "service_endpoint.hpp"

#include <mpiproc/detail/bytes.hpp>
#include <mpiproc/detail/list_store.hpp>

#include <algorithm>
#include <iterator>
#include <limits>
#include <memory>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t { op_append, op_extend, op_insert, op_get, op_set, op_set_if, op_pop, op_size, op_reverse,
                       op_clear, op_items, op_versioned_items, op_replace_if, op_find, op_sort, op_slice,
                       op_set_slice, op_erase_slice, op_repeat };
// What op_find looks for.
enum : std::uint64_t { find_index, find_count, find_contains, find_remove };
// Every answer starts with one of these; an error's message follows its status. (The service
// passes on key_error and index_error as themselves, but not these.)
enum : std::uint64_t { answer_ok, answer_value_error, answer_usage_error };

/// Python's PySlice_AdjustIndices: the slice's first index, its step, and how many items it takes
/// from a list of `n` items.
struct span {
  std::int64_t start, step;
  std::uint64_t length;

  span(const slice_bounds& s, std::size_t size) : step(s.step) {
    const auto n = static_cast<std::int64_t>(size);
    const auto clamp = [&](std::int64_t i) {
      if (i < 0) {
        i += n;  // no overflow: n >= 0
        if (i < 0) i = step < 0 ? -1 : 0;
      } else if (i >= n) {
        i = step < 0 ? n - 1 : n;
      }
      return i;
    };
    start = clamp(s.start);
    const std::int64_t stop = clamp(s.stop);  // both in [-1, n], so the differences below fit
    if (step < 0)
      length = stop < start ? static_cast<std::uint64_t>((start - stop - 1) / -step + 1) : 0;
    else
      length = start < stop ? static_cast<std::uint64_t>((stop - start - 1) / step + 1) : 0;
  }
  std::size_t at(std::uint64_t k) const {  // the k-th index of the slice, k < length
    return static_cast<std::size_t>(start + static_cast<std::int64_t>(k) * step);
  }
};

/// Rank 0's list, touched only by its service thread.
struct sequence {
  std::vector<std::string> items;
  item_order order;
  std::uint64_t version = 1;

  /// `index` from the front (or from the end, below 0), checked against the items (or, to insert,
  /// clamped to them as Python does).
  std::size_t position(std::uint64_t raw, bool inserting) const {
    const auto n = static_cast<std::int64_t>(items.size());
    auto index = static_cast<std::int64_t>(raw);
    if (index < 0) index += n;
    if (inserting) return static_cast<std::size_t>(std::clamp<std::int64_t>(index, 0, n));
    if (index < 0 || index >= n)
      throw index_error(n == 0 ? "mpiproc::shared_list: index " + std::to_string(static_cast<std::int64_t>(raw)) +
                                     " in an empty list"
                               : "mpiproc::shared_list: index " + std::to_string(static_cast<std::int64_t>(raw)) +
                                     " out of range for a list of " + std::to_string(n));
    return static_cast<std::size_t>(index);
  }

  /// list.index's bounds: below 0 from the end, then clamped to the items.
  std::size_t bound(std::int64_t i) const {
    const auto n = static_cast<std::int64_t>(items.size());
    if (i < 0) i = std::max<std::int64_t>(i + n, 0);
    return static_cast<std::size_t>(std::min(i, n));
  }

  static slice_bounds read_slice(byte_reader& in) {
    slice_bounds s;
    s.start = static_cast<std::int64_t>(in.number());
    s.stop = static_cast<std::int64_t>(in.number());
    s.step = static_cast<std::int64_t>(in.number());
    return s;
  }

  std::string find(byte_reader& in, byte_writer& out) {
    const std::uint64_t what = in.number();
    if (!order.equal_to) throw error("mpiproc::shared_list: the items cannot be compared (a bug)");
    const auto equal = order.equal_to(in.bytes());
    std::size_t from = 0, to = items.size();
    if (what == find_index) {
      from = bound(static_cast<std::int64_t>(in.number()));
      to = bound(static_cast<std::int64_t>(in.number()));
    }
    std::uint64_t count = 0;
    for (std::size_t i = from; i < to; ++i) {
      if (!equal(items[i])) continue;
      if (what == find_count) {
        ++count;
        continue;
      }
      if (what == find_remove) {
        items.erase(items.begin() + static_cast<std::ptrdiff_t>(i));
        ++version;
      }
      return out.number(1).number(i).take();
    }
    if (what == find_remove) throw value_error("mpiproc::shared_list: remove(x): x not in list");
    if (what == find_index) throw value_error("mpiproc::shared_list: index(x): x not in list");
    return out.number(what == find_count ? count : 0).take();
  }

  void set_slice(const slice_bounds& s, std::vector<std::string> with) {
    if (s.step == 1) {  // any length: the items between start and stop (or none) give way
      const span sp(s, items.size());
      const auto first = items.begin() + sp.start;
      items.erase(first, first + static_cast<std::ptrdiff_t>(sp.length));
      items.insert(items.begin() + sp.start, std::make_move_iterator(with.begin()), std::make_move_iterator(with.end()));
      return;
    }
    const span sp(s, items.size());
    if (with.size() != sp.length)
      throw value_error("mpiproc::shared_list: attempt to assign sequence of size " + std::to_string(with.size()) +
                        " to extended slice of size " + std::to_string(sp.length));
    for (std::uint64_t k = 0; k < sp.length; ++k) items[sp.at(k)] = std::move(with[k]);
  }

  void erase_slice(const slice_bounds& s) {
    const span sp(s, items.size());
    std::vector<bool> gone(items.size());
    for (std::uint64_t k = 0; k < sp.length; ++k) gone[sp.at(k)] = true;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (gone[i]) continue;
      if (kept != i) items[kept] = std::move(items[i]);  // a string moved onto itself would be emptied
      ++kept;
    }
    items.resize(kept);
  }

  std::string answer(const std::string& request) {
    try {
      return byte_writer().number(answer_ok).take() + answer_ok_or_throw(request);
    } catch (const value_error& e) {
      return byte_writer().number(answer_value_error).bytes(e.what()).take();
    } catch (const usage_error& e) {
      return byte_writer().number(answer_usage_error).bytes(e.what()).take();
    }
  }

  std::string answer_ok_or_throw(const std::string& request) {
    byte_reader in(request);
    byte_writer out;
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
        if (items.empty()) throw index_error("mpiproc::shared_list: pop from empty list");
        const std::size_t at = position(in.number(), false);
        out.bytes(items[at]);
        items.erase(items.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      }
      case op_size: return out.number(items.size()).take();
      case op_reverse: std::reverse(items.begin(), items.end()); break;
      case op_clear: items.clear(); break;
      case op_items:
      case op_versioned_items:
        out.number(items.size());
        for (const std::string& item : items) out.bytes(item);
        if (op == op_versioned_items) out.number(version);
        return out.take();
      case op_replace_if: {
        if (in.number() != version) return out.number(0).take();
        std::vector<std::string> all(in.number());
        for (std::string& item : all) item = in.bytes();
        items = std::move(all);
        ++version;
        return out.number(1).take();
      }
      case op_find: return find(in, out);
      case op_sort: {
        if (!order.sort) throw error("mpiproc::shared_list: the items cannot be ordered (a bug)");
        std::vector<std::string> sorted = items;  // a comparison that throws leaves the list as it was
        order.sort(sorted, in.number() != 0);
        items = std::move(sorted);
        break;
      }
      case op_slice: {
        const span sp(read_slice(in), items.size());
        out.number(sp.length);
        for (std::uint64_t k = 0; k < sp.length; ++k) out.bytes(items[sp.at(k)]);
        return out.take();
      }
      case op_set_slice: {
        const slice_bounds s = read_slice(in);
        std::vector<std::string> with(in.number());
        for (std::string& item : with) item = in.bytes();
        set_slice(s, std::move(with));
        break;
      }
      case op_erase_slice: erase_slice(read_slice(in)); break;
      case op_repeat: {
        const auto times = static_cast<std::int64_t>(in.number());
        if (times <= 0 || items.empty()) {
          items.clear();
          break;
        }
        if (static_cast<std::uint64_t>(times) > (std::uint64_t{1} << 40) / items.size())
          throw usage_error("mpiproc::shared_list: repeat(" + std::to_string(times) + ") of a list of " +
                            std::to_string(items.size()) + " items would not fit in memory");
        const std::size_t n = items.size();
        items.reserve(n * static_cast<std::size_t>(times));
        for (std::int64_t t = 1; t < times; ++t)
          for (std::size_t i = 0; i < n; ++i) items.push_back(items[i]);
        break;
      }
      default: throw error("mpiproc: an unknown shared list request (a bug)");
    }
    ++version;
    return out.take();
  }
};

byte_writer& put_slice(byte_writer& out, const slice_bounds& s) {
  return out.number(static_cast<std::uint64_t>(s.start))
      .number(static_cast<std::uint64_t>(s.stop))
      .number(static_cast<std::uint64_t>(s.step));
}

std::vector<std::string> read_items(byte_reader& in) {
  std::vector<std::string> all(in.number());
  for (std::string& item : all) item = in.bytes();
  return all;
}
}  // namespace

slice_bounds slice_bounds::of(std::optional<std::int64_t> start, std::optional<std::int64_t> stop, std::int64_t step) {
  if (step == 0) throw value_error("mpiproc::shared_list: slice step cannot be zero");
  slice_bounds s;
  // Python keeps -step representable: a step of INT64_MIN walks as -INT64_MAX.
  s.step = std::max(step, -std::numeric_limits<std::int64_t>::max());
  s.start = start ? *start : step < 0 ? none_high : 0;
  s.stop = stop ? *stop : step < 0 ? none_low : none_high;
  return s;
}

namespace {
/// Only rank 0 serves the list: a rank that serves nothing runs no service thread for it, which
/// would poll beside its own work.
service_endpoint::handler served_on_rank_0(const communicator& comm, const std::vector<std::string>& initial,
                                           item_order order) {
  if (comm.rank() != 0) return {};
  return [list = std::make_shared<sequence>(sequence{initial, std::move(order), 1})](
             int, const std::string& request) -> std::optional<std::string> { return list->answer(request); };
}
}  // namespace

list_store::list_store(const communicator& comm, const std::vector<std::string>& initial, item_order order)
    : endpoint_(std::make_unique<service_endpoint>(comm, 0, nullptr, served_on_rank_0(comm, initial, std::move(order)))) {}

list_store::~list_store() = default;
list_store::list_store(list_store&&) noexcept = default;
list_store& list_store::operator=(list_store&&) noexcept = default;

service_endpoint& list_store::endpoint() const {
  if (!endpoint_) throw usage_error("mpiproc::shared_list: used after it was moved from");
  return *endpoint_;
}

std::string list_store::ask(const std::string& request) {
  std::string answer = *endpoint().call(0, request);
  byte_reader in(answer);
  const std::uint64_t status = in.number();
  if (status == answer_value_error) throw value_error(in.bytes());
  if (status == answer_usage_error) throw usage_error(in.bytes());
  return answer.substr(sizeof(std::uint64_t));
}

void list_store::append(const std::string& item) { ask(byte_writer().number(op_append).bytes(item).take()); }

void list_store::extend(const std::vector<std::string>& items) {
  byte_writer out;
  out.number(op_extend).number(items.size());
  for (const std::string& item : items) out.bytes(item);
  ask(out.take());
}

void list_store::insert(std::int64_t index, const std::string& item) {
  ask(byte_writer().number(op_insert).number(static_cast<std::uint64_t>(index)).bytes(item).take());
}

std::pair<std::string, std::uint64_t> list_store::get(std::int64_t index) {
  byte_reader in(ask(byte_writer().number(op_get).number(static_cast<std::uint64_t>(index)).take()));
  std::string item = in.bytes();
  return {std::move(item), in.number()};
}

void list_store::set(std::int64_t index, const std::string& item) {
  ask(byte_writer().number(op_set).number(static_cast<std::uint64_t>(index)).bytes(item).take());
}

bool list_store::set_if(std::int64_t index, std::uint64_t version, const std::string& item) {
  return byte_reader(ask(byte_writer().number(op_set_if).number(static_cast<std::uint64_t>(index)).number(version).bytes(item).take()))
             .number() != 0;
}

std::string list_store::pop(std::int64_t index) {
  return byte_reader(ask(byte_writer().number(op_pop).number(static_cast<std::uint64_t>(index)).take())).bytes();
}

std::uint64_t list_store::size() { return byte_reader(ask(byte_writer().number(op_size).take())).number(); }
void list_store::reverse() { ask(byte_writer().number(op_reverse).take()); }
void list_store::clear() { ask(byte_writer().number(op_clear).take()); }

std::vector<std::string> list_store::items() {
  byte_reader in(ask(byte_writer().number(op_items).take()));
  return read_items(in);
}

std::pair<std::vector<std::string>, std::uint64_t> list_store::versioned_items() {
  byte_reader in(ask(byte_writer().number(op_versioned_items).take()));
  std::vector<std::string> all = read_items(in);
  return {std::move(all), in.number()};
}

bool list_store::replace_if(std::uint64_t version, const std::vector<std::string>& items) {
  byte_writer out;
  out.number(op_replace_if).number(version).number(items.size());
  for (const std::string& item : items) out.bytes(item);
  return byte_reader(ask(out.take())).number() != 0;
}

std::uint64_t list_store::index(const std::string& item, std::int64_t start, std::int64_t stop) {
  byte_reader in(ask(byte_writer()
                         .number(op_find)
                         .number(find_index)
                         .bytes(item)
                         .number(static_cast<std::uint64_t>(start))
                         .number(static_cast<std::uint64_t>(stop))
                         .take()));
  in.number();
  return in.number();
}

std::uint64_t list_store::count(const std::string& item) {
  return byte_reader(ask(byte_writer().number(op_find).number(find_count).bytes(item).take())).number();
}

bool list_store::contains(const std::string& item) {
  return byte_reader(ask(byte_writer().number(op_find).number(find_contains).bytes(item).take())).number() != 0;
}

void list_store::remove(const std::string& item) {
  ask(byte_writer().number(op_find).number(find_remove).bytes(item).take());
}

void list_store::repeat(std::int64_t times) {
  ask(byte_writer().number(op_repeat).number(static_cast<std::uint64_t>(times)).take());
}

void list_store::sort(bool reverse) { ask(byte_writer().number(op_sort).number(reverse).take()); }

std::vector<std::string> list_store::slice(const slice_bounds& s) {
  byte_writer out;
  out.number(op_slice);
  byte_reader in(ask(put_slice(out, s).take()));
  return read_items(in);
}

void list_store::set_slice(const slice_bounds& s, const std::vector<std::string>& items) {
  byte_writer out;
  out.number(op_set_slice);
  put_slice(out, s).number(items.size());
  for (const std::string& item : items) out.bytes(item);
  ask(out.take());
}

void list_store::erase_slice(const slice_bounds& s) {
  byte_writer out;
  out.number(op_erase_slice);
  ask(put_slice(out, s).take());
}

}  // namespace mpiproc::detail
