#include <mpiproc/detail/dict_store.hpp>
#include <mpiproc/detail/wire.hpp>

#include <memory>
#include <unordered_map>

namespace mpiproc::detail {

namespace {
enum : std::uint64_t { op_get, op_set, op_set_if, op_erase, op_size, op_clear, op_entries };

/// One rank's part, touched only by its service thread.
struct partition {
  struct entry {
    std::string value;
    std::uint64_t version;
  };
  std::unordered_map<std::string, entry> entries;
  std::uint64_t next_version = 1;  // never reused, so a key erased and set again looks changed

  std::string answer(const std::string& request) {
    wire_reader in(request);
    wire_writer out;
    const std::uint64_t op = in.number();
    if (op == op_size) return out.number(entries.size()).take();
    if (op == op_clear) {
      entries.clear();
      return out.take();
    }
    if (op == op_entries) {
      out.number(entries.size());
      for (const auto& [key, e] : entries) out.bytes(key).bytes(e.value);
      return out.take();
    }
    const std::string key = in.bytes();
    auto it = entries.find(key);
    switch (op) {
      case op_get:
        return it == entries.end() ? out.number(0).take() : out.number(it->second.version).bytes(it->second.value).take();
      case op_set:
        entries[key] = {in.bytes(), next_version++};
        return out.take();
      case op_set_if: {
        const std::uint64_t expected = in.number();
        const std::uint64_t now = it == entries.end() ? 0 : it->second.version;
        if (now != expected) return out.number(0).number(now).bytes(now ? it->second.value : std::string()).take();
        entries[key] = {in.bytes(), next_version++};
        return out.number(1).take();
      }
      case op_erase: {
        const bool existed = it != entries.end();
        if (existed) entries.erase(it);
        return out.number(existed).take();
      }
      default: throw error("mpiproc: an unknown shared dict request (a bug)");
    }
  }
};

/// FNV-1a: the same on every rank, whatever the standard library.
std::uint64_t hash_of(const std::string& bytes) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

dict_store::dict_store(MPI_Comm comm)
    : segment_(comm, 0, nullptr, [part = std::make_shared<partition>()](int, const std::string& request) -> std::optional<std::string> {
        return part->answer(request);
      }) {}

int dict_store::owner(const std::string& key) const {
  return static_cast<int>(hash_of(key) % static_cast<std::uint64_t>(segment_.size()));
}

std::string dict_store::ask(int rank, const std::string& request) { return *segment_.call(rank, request); }

dict_store::found dict_store::get(const std::string& key) {
  wire_reader in(ask(owner(key), wire_writer().number(op_get).bytes(key).take()));
  found f;
  f.version = in.number();
  if (f.version) f.value = in.bytes();
  return f;
}

void dict_store::set(const std::string& key, const std::string& value) {
  ask(owner(key), wire_writer().number(op_set).bytes(key).bytes(value).take());
}

std::optional<dict_store::found> dict_store::set_if(const std::string& key, std::uint64_t version,
                                                     const std::string& value) {
  wire_reader in(ask(owner(key), wire_writer().number(op_set_if).bytes(key).number(version).bytes(value).take()));
  if (in.number()) return std::nullopt;
  found now;
  now.version = in.number();
  now.value = in.bytes();
  return now;
}

bool dict_store::erase(const std::string& key) {
  return wire_reader(ask(owner(key), wire_writer().number(op_erase).bytes(key).take())).number() != 0;
}

std::uint64_t dict_store::size() {
  std::uint64_t total = 0;
  for (int r = 0; r < segment_.size(); ++r) total += wire_reader(ask(r, wire_writer().number(op_size).take())).number();
  return total;
}

void dict_store::clear() {
  for (int r = 0; r < segment_.size(); ++r) ask(r, wire_writer().number(op_clear).take());
}

std::vector<std::pair<std::string, std::string>> dict_store::entries() {
  std::vector<std::pair<std::string, std::string>> all;
  for (int r = 0; r < segment_.size(); ++r) {
    wire_reader in(ask(r, wire_writer().number(op_entries).take()));
    for (std::uint64_t n = in.number(); n > 0; --n) {
      std::string key = in.bytes();
      all.emplace_back(std::move(key), in.bytes());
    }
  }
  return all;
}

}  // namespace mpiproc::detail
