#include "dict_served.hpp"
#include "service_endpoint.hpp"

#include <mpiproc/detail/bytes.hpp>

#include <iterator>
#include <map>
#include <memory>
#include <unordered_map>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t { op_get, op_set, op_set_if, op_erase, op_size, op_clear, op_entries, op_pop, op_popitem,
                       op_setdefault };
enum : std::uint64_t { want_keys = 1, want_values = 2 };

/// One rank's part, touched only by its service thread. Its keys keep the order they came in (a
/// key set again keeps its place; erased and set again, it goes last), as a Python dict's do.
struct partition {
  struct entry {
    std::string value;
    std::uint64_t version;
    std::uint64_t born;  // its place in `order`
  };
  std::unordered_map<std::string, entry> entries;
  std::map<std::uint64_t, std::string> order;  // born -> key
  std::uint64_t next_version = 1;  // never reused, so a key erased and set again looks changed

  void put(const std::string& key, std::string value) {
    const std::uint64_t version = next_version++;
    auto [it, added] = entries.try_emplace(key, entry{std::string(), version, version});
    if (added) order.emplace(version, key);
    it->second.value = std::move(value);
    it->second.version = version;
  }

  void drop(std::unordered_map<std::string, entry>::iterator it) {
    order.erase(it->second.born);
    entries.erase(it);
  }

  std::string answer(const std::string& request) {
    byte_reader in(request);
    byte_writer out;
    const std::uint64_t op = in.number();
    if (op == op_size) return out.number(entries.size()).take();
    if (op == op_clear) {
      entries.clear();
      order.clear();
      return out.take();
    }
    if (op == op_entries) {
      const std::uint64_t want = in.number();
      out.number(entries.size());
      for (const auto& [born, key] : order) {
        if (want & want_keys) out.bytes(key);
        if (want & want_values) out.bytes(entries.at(key).value);
      }
      return out.take();
    }
    if (op == op_popitem) {  // the last in, as Python's popitem
      if (order.empty()) return out.number(0).take();
      auto it = entries.find(std::prev(order.end())->second);
      out.number(1).bytes(it->first).bytes(it->second.value);
      drop(it);
      return out.take();
    }
    const std::string key = in.bytes();
    auto it = entries.find(key);
    switch (op) {
      case op_get:
        return it == entries.end() ? out.number(0).take() : out.number(it->second.version).bytes(it->second.value).take();
      case op_set:
        put(key, in.bytes());
        return out.take();
      case op_set_if: {
        const std::uint64_t expected = in.number();
        const std::uint64_t now = it == entries.end() ? 0 : it->second.version;
        if (now != expected) return out.number(0).number(now).bytes(now ? it->second.value : std::string()).take();
        put(key, in.bytes());
        return out.number(1).take();
      }
      case op_erase: {
        const bool existed = it != entries.end();
        if (existed) drop(it);
        return out.number(existed).take();
      }
      case op_pop: {
        if (it == entries.end()) return out.number(0).take();
        out.number(1).bytes(it->second.value);
        drop(it);
        return out.take();
      }
      case op_setdefault: {
        if (it == entries.end()) {
          std::string value = in.bytes();
          put(key, value);
          return out.bytes(value).take();
        }
        return out.bytes(it->second.value).take();
      }
      default: throw error("mpiproc: an unknown shared dict request (a bug)");
    }
  }
};
}  // namespace

dict_served::dict_served(const communicator& comm)
    : endpoint_(std::make_unique<service_endpoint>(
          comm, 0, nullptr, [part = std::make_shared<partition>()](int, const std::string& request) -> std::optional<std::string> {
            return part->answer(request);
          })) {}

dict_served::~dict_served() = default;

int dict_served::owner(const std::string& key) const {
  return static_cast<int>(key_hash(key) % static_cast<std::uint64_t>(endpoint_->size()));
}

std::string dict_served::ask(int rank, const std::string& request) { return *endpoint_->call(rank, request); }

dict_store::found dict_served::get(const std::string& key) {
  byte_reader in(ask(owner(key), byte_writer().number(op_get).bytes(key).take()));
  found f;
  f.version = in.number();
  if (f.version) f.value = in.bytes();
  return f;
}

void dict_served::set(const std::string& key, const std::string& value) {
  ask(owner(key), byte_writer().number(op_set).bytes(key).bytes(value).take());
}

std::optional<dict_store::found> dict_served::set_if(const std::string& key, std::uint64_t version,
                                                     const std::string& value) {
  byte_reader in(ask(owner(key), byte_writer().number(op_set_if).bytes(key).number(version).bytes(value).take()));
  if (in.number()) return std::nullopt;
  found now;
  now.version = in.number();
  now.value = in.bytes();
  return now;
}

bool dict_served::erase(const std::string& key) {
  return byte_reader(ask(owner(key), byte_writer().number(op_erase).bytes(key).take())).number() != 0;
}

std::uint64_t dict_served::size() {
  std::uint64_t total = 0;
  for (int r = 0; r < endpoint_->size(); ++r) total += byte_reader(ask(r, byte_writer().number(op_size).take())).number();
  return total;
}

void dict_served::clear() {
  for (int r = 0; r < endpoint_->size(); ++r) ask(r, byte_writer().number(op_clear).take());
}

std::optional<std::string> dict_served::pop(const std::string& key) {
  byte_reader in(ask(owner(key), byte_writer().number(op_pop).bytes(key).take()));
  if (!in.number()) return std::nullopt;
  return in.bytes();
}

std::optional<std::pair<std::string, std::string>> dict_served::popitem() {
  const int n = endpoint_->size();
  for (int k = 0; k < n; ++k) {  // the calling rank first: ranks popping at once ask different owners
    byte_reader in(ask((endpoint_->rank() + k) % n, byte_writer().number(op_popitem).take()));
    if (!in.number()) continue;
    std::string key = in.bytes();
    return std::pair{std::move(key), in.bytes()};
  }
  return std::nullopt;
}

std::string dict_served::setdefault(const std::string& key, const std::string& value) {
  return byte_reader(ask(owner(key), byte_writer().number(op_setdefault).bytes(key).bytes(value).take())).bytes();
}

std::vector<std::pair<std::string, std::string>> dict_served::entries() {
  std::vector<std::pair<std::string, std::string>> all;
  for (int r = 0; r < endpoint_->size(); ++r) {
    byte_reader in(ask(r, byte_writer().number(op_entries).number(want_keys | want_values).take()));
    for (std::uint64_t n = in.number(); n > 0; --n) {
      std::string key = in.bytes();
      all.emplace_back(std::move(key), in.bytes());
    }
  }
  return all;
}

std::vector<std::string> dict_served::keys_or_values(bool keys) {
  std::vector<std::string> all;
  for (int r = 0; r < endpoint_->size(); ++r) {
    byte_reader in(ask(r, byte_writer().number(op_entries).number(keys ? want_keys : want_values).take()));
    for (std::uint64_t n = in.number(); n > 0; --n) all.push_back(in.bytes());
  }
  return all;
}

}  // namespace mpiproc::detail
