#include "dict_node.hpp"
#include "dict_served.hpp"
#include "node_memory.hpp"

#include <mpiproc/detail/poller.hpp>
#include <mpiproc/error.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <fstream>
#include <string>

namespace mpiproc::detail {

// Rank 0's memory: the header, then the buckets, then the heap of blocks. Offsets address it;
// 0 means none. Fields that ranks change without a lock are changed through atomic_ref.
constexpr unsigned size_classes = 64;  // a block of class k has 2^k bytes
constexpr unsigned smallest_class = 6;  // 64 bytes: every block starts on a cache line
constexpr std::uint64_t bucket_bits = 16;
constexpr std::size_t table_at = 4096;
constexpr std::size_t heap_at = table_at + (std::size_t{1} << bucket_bits) * 16;

struct dict_node::header {
  std::uint64_t top;      // atomic: the heap's bytes handed out so far, from heap_at
  std::uint64_t version;  // atomic: the last entry born
  std::uint64_t count;    // atomic: the entries
  std::uint32_t heap_lock, order_lock;
  std::uint64_t first, last;  // under order_lock: the ends of the insertion order
  std::uint64_t free[size_classes];  // under heap_lock: a list of free blocks of each class
};
static_assert(sizeof(dict_node::header) <= table_at);

struct dict_node::bucket {
  std::uint32_t lock, unused;
  std::uint64_t head;  // its chain of entries
};
static_assert(sizeof(dict_node::bucket) == 16);

/// An entry's block: these fields, then the key's bytes. The value has a block of its own, so a
/// value that grows moves without the entry leaving its chain or its place in the order.
struct dict_node::entry {
  std::uint64_t next;           // in its bucket's chain
  std::uint64_t before, after;  // under order_lock: its neighbours in the insertion order
  std::uint64_t hash, version;
  std::uint64_t value_at, value_bytes;
  std::uint32_t key_bytes, value_class;  // value_class 0: no value block
};
static_assert(sizeof(dict_node::entry) == 64);

namespace {
unsigned class_of(std::uint64_t bytes) {
  return std::max(smallest_class, static_cast<unsigned>(std::bit_width(std::max<std::uint64_t>(bytes, 1) - 1)));
}
}  // namespace

/// Holds one lock word for a scope.
class dict_node::locked {
 public:
  locked(dict_node& dict, std::uint32_t& word) : word_(word) { dict.lock(word); }
  ~locked() { unlock(word_); }
  locked(const locked&) = delete;
  locked& operator=(const locked&) = delete;

 private:
  std::uint32_t& word_;
};

/// Holds every bucket's lock, taken in one order (so two ranks taking them all cannot deadlock),
/// then the order's: nothing changes while it lives.
class dict_node::all_locked {
 public:
  explicit all_locked(dict_node& dict) : dict_(dict) {
    bucket* table = reinterpret_cast<bucket*>(dict.base_ + table_at);
    try {
      for (; taken_ < (std::uint64_t{1} << bucket_bits); ++taken_) dict.lock(table[taken_].lock);
      dict.lock(dict.head().order_lock);
    } catch (...) {
      give_back(table);
      throw;
    }
  }
  ~all_locked() {
    unlock(dict_.head().order_lock);
    give_back(reinterpret_cast<bucket*>(dict_.base_ + table_at));
  }
  all_locked(const all_locked&) = delete;
  all_locked& operator=(const all_locked&) = delete;

 private:
  void give_back(bucket* table) {
    while (taken_ > 0) unlock(table[--taken_].lock);
  }
  dict_node& dict_;
  std::uint64_t taken_ = 0;
};

std::size_t dict_node::reserved_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  std::size_t node = pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
  // Under a cgroup v2 limit (a Slurm job's, a container's), that limit is the memory there is.
  std::ifstream groups("/proc/self/cgroup");
  for (std::string line; std::getline(groups, line);) {
    if (line.rfind("0::", 0) != 0) continue;
    std::ifstream limit("/sys/fs/cgroup" + line.substr(3) + "/memory.max");
    std::uint64_t most = 0;
    if (limit >> most && most > 0) node = std::min<std::size_t>(node, most);
  }
  return std::clamp<std::size_t>(node, std::size_t{1} << 30, std::size_t{1} << 40);
}

dict_node::dict_node(std::unique_ptr<shared_segment> memory)
    : memory_(std::move(memory)),
      base_(reinterpret_cast<std::byte*>(memory_->mapped_word(0, 0))),
      capacity_(memory_->bytes(0)) {}

void dict_node::check_usable() const {
  if (!memory_->usable())
    throw usage_error("mpiproc::shared_dict: used after its communicator was released (the MPI environment ended)");
  memory_->throw_if_broken();  // a rank that failed inside an operation may have left it half done
}

dict_node::header& dict_node::head() const { return *reinterpret_cast<header*>(base_); }

dict_node::bucket& dict_node::bucket_of(std::uint64_t hash) const {
  const std::uint64_t index = (hash * 0x9e3779b97f4a7c15ull) >> (64 - bucket_bits);  // mixes FNV's weak low bits
  return reinterpret_cast<bucket*>(base_ + table_at)[index];
}

dict_node::entry& dict_node::entry_at(std::uint64_t offset) const { return *reinterpret_cast<entry*>(base_ + offset); }
char* dict_node::bytes_at(std::uint64_t offset) const { return reinterpret_cast<char*>(base_ + offset); }

// The lock words are Drepper's futex mutex: 0 free, 1 held, 2 held with sleepers. A rank spins and
// yields first (the holder is inside a few copies), then sleeps, waking now and then to see
// whether another rank's failure broke the dict.
void dict_node::lock(std::uint32_t& word) {
  std::atomic_ref<std::uint32_t> state(word);
  std::uint32_t expected = 0;
  if (state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;
  for (poller patience = poller::for_memory(); !patience.sleepy(); patience.pause()) {
    expected = 0;
    if (state.load(std::memory_order_relaxed) == 0 &&
        state.compare_exchange_weak(expected, 1, std::memory_order_acquire))
      return;
  }
  while (state.exchange(2, std::memory_order_acquire) != 0) {
    node_memory::futex_wait(&word, 2, clock::now() + std::chrono::milliseconds(10));
    memory_->throw_if_broken();
  }
}

void dict_node::unlock(std::uint32_t& word) {
  if (std::atomic_ref<std::uint32_t>(word).exchange(0, std::memory_order_release) == 2)
    node_memory::futex_wake_all(&word);
}

std::uint64_t dict_node::allocate(unsigned size_class) {
  {
    header& h = head();
    locked guard(*this, h.heap_lock);
    if (const std::uint64_t at = h.free[size_class]) {
      h.free[size_class] = entry_at(at).next;
      return at;
    }
  }
  const std::uint64_t bytes = std::uint64_t{1} << size_class;
  std::atomic_ref<std::uint64_t> top(head().top);
  std::uint64_t used = top.load();
  do {
    if (size_class >= 63 || bytes > capacity_ - heap_at - used)
      throw error("mpiproc::shared_dict: the node's memory reserved for it (" + std::to_string(capacity_ >> 20) +
                  " MiB) is full");
  } while (!top.compare_exchange_weak(used, used + bytes));
  return heap_at + used;
}

void dict_node::release(std::uint64_t at, unsigned size_class) {
  if (size_class >= 16) {  // 64 KiB or more: its pages go back to the node, all but the free list's link
    const std::uint64_t page = 4096, first = (at + 8 + page - 1) / page * page,
                        end = (at + (std::uint64_t{1} << size_class)) / page * page;
    if (end > first) ::madvise(base_ + first, end - first, MADV_REMOVE);
  }
  header& h = head();
  locked guard(*this, h.heap_lock);
  entry_at(at).next = h.free[size_class];
  h.free[size_class] = at;
}

// A version is the entry's birth (high half, from a counter of the whole dict: a key erased and set
// again never shows an old version) and its changes since (low half, under its bucket's lock: no
// line that every writer takes).
std::uint64_t dict_node::next_version(const entry& e) {
  if (e.version != 0) return e.version + 1;
  return (std::atomic_ref<std::uint64_t>(head().version).fetch_add(1) + 1) << 32;
}

std::uint64_t dict_node::find(const bucket& b, std::uint64_t hash, const std::string& key) const {
  for (std::uint64_t at = b.head; at != 0; at = entry_at(at).next) {
    const entry& e = entry_at(at);
    if (e.hash == hash && e.key_bytes == key.size() && std::memcmp(bytes_at(at + sizeof(entry)), key.data(), key.size()) == 0)
      return at;
  }
  return 0;
}

std::string dict_node::value_of(const entry& e) const { return std::string(bytes_at(e.value_at), e.value_bytes); }
std::string dict_node::key_of(const entry& e) const {
  return std::string(reinterpret_cast<const char*>(&e + 1), e.key_bytes);
}

void dict_node::put_value(entry& e, const std::string& value) {
  const std::uint64_t room = e.value_class ? std::uint64_t{1} << e.value_class : 0;
  // A new block when the value outgrows its block, or shrinks to a quarter of a block of 4 KiB or more.
  if (value.size() > room || (e.value_class > 12 && value.size() < room / 4)) {
    const unsigned size_class = class_of(value.size());
    const std::uint64_t old_at = e.value_at;
    const unsigned old_class = e.value_class;
    e.value_at = allocate(size_class);
    e.value_class = size_class;
    if (old_class) release(old_at, old_class);
  }
  if (!value.empty()) std::memcpy(bytes_at(e.value_at), value.data(), value.size());
  e.value_bytes = value.size();
  e.version = next_version(e);
}

std::uint64_t dict_node::insert(bucket& b, std::uint64_t hash, const std::string& key, const std::string& value) {
  if (key.size() > 0xffff'ffffu) throw usage_error("mpiproc::shared_dict: a key of 4 GiB or more");
  const unsigned size_class = class_of(sizeof(entry) + key.size());
  const std::uint64_t at = allocate(size_class);
  entry& e = entry_at(at);
  e = entry{};
  e.hash = hash;
  e.key_bytes = static_cast<std::uint32_t>(key.size());
  std::memcpy(bytes_at(at + sizeof(entry)), key.data(), key.size());
  try {
    put_value(e, value);
  } catch (...) {
    release(at, size_class);
    throw;
  }
  header& h = head();
  {
    locked guard(*this, h.order_lock);  // taken before the entry shows anywhere: all of it or nothing
    e.next = b.head;
    b.head = at;
    e.before = h.last;
    if (h.last) entry_at(h.last).after = at;
    else h.first = at;
    h.last = at;
    std::atomic_ref<std::uint64_t>(h.count).fetch_add(1);
  }
  return at;
}

void dict_node::unlink(bucket& b, std::uint64_t at) {
  entry& e = entry_at(at);
  std::uint64_t* link = &b.head;
  while (*link != at) link = &entry_at(*link).next;
  *link = e.next;
  header& h = head();
  (e.before ? entry_at(e.before).after : h.first) = e.after;
  (e.after ? entry_at(e.after).before : h.last) = e.before;
  std::atomic_ref<std::uint64_t>(h.count).fetch_sub(1);
}

void dict_node::free_entry(std::uint64_t at) {
  const entry& e = entry_at(at);
  const unsigned size_class = class_of(sizeof(entry) + e.key_bytes);
  if (e.value_class) release(e.value_at, e.value_class);
  release(at, size_class);
}

void dict_node::remove(bucket& b, std::uint64_t at) {
  {
    locked guard(*this, head().order_lock);
    unlink(b, at);
  }
  free_entry(at);
}

dict_store::found dict_node::get(const std::string& key) {
  check_usable();
  const std::uint64_t hash = key_hash(key);
  bucket& b = bucket_of(hash);
  locked guard(*this, b.lock);
  const std::uint64_t at = find(b, hash, key);
  if (!at) return {};
  return {value_of(entry_at(at)), entry_at(at).version};
}

void dict_node::set(const std::string& key, const std::string& value) {
  check_usable();
  const std::uint64_t hash = key_hash(key);
  bucket& b = bucket_of(hash);
  locked guard(*this, b.lock);
  if (const std::uint64_t at = find(b, hash, key))
    put_value(entry_at(at), value);
  else
    insert(b, hash, key, value);
}

std::optional<dict_store::found> dict_node::set_if(const std::string& key, std::uint64_t version,
                                                    const std::string& value) {
  check_usable();
  const std::uint64_t hash = key_hash(key);
  bucket& b = bucket_of(hash);
  locked guard(*this, b.lock);
  const std::uint64_t at = find(b, hash, key);
  const std::uint64_t now = at ? entry_at(at).version : 0;
  if (now != version) return found{at ? value_of(entry_at(at)) : std::string(), now};
  if (at)
    put_value(entry_at(at), value);
  else
    insert(b, hash, key, value);
  return std::nullopt;
}

bool dict_node::erase(const std::string& key) {
  check_usable();
  const std::uint64_t hash = key_hash(key);
  bucket& b = bucket_of(hash);
  locked guard(*this, b.lock);
  const std::uint64_t at = find(b, hash, key);
  if (at) remove(b, at);
  return at != 0;
}

std::optional<std::string> dict_node::pop(const std::string& key) {
  check_usable();
  const std::uint64_t hash = key_hash(key);
  bucket& b = bucket_of(hash);
  locked guard(*this, b.lock);
  const std::uint64_t at = find(b, hash, key);
  if (!at) return std::nullopt;
  std::string value = value_of(entry_at(at));
  remove(b, at);
  return value;
}

std::optional<std::pair<std::string, std::string>> dict_node::popitem() {
  check_usable();
  header& h = head();
  for (;;) {
    // The order's lock comes after a bucket's: read the last entry's bucket under it, take that
    // bucket, and see whether the entry is still the last (else start over).
    std::uint64_t at = 0, hash = 0;
    {
      locked guard(*this, h.order_lock);
      if (!(at = h.last)) return std::nullopt;
      hash = entry_at(at).hash;
    }
    bucket& b = bucket_of(hash);
    locked guard(*this, b.lock);
    std::pair<std::string, std::string> out;
    {
      locked order(*this, h.order_lock);
      if (h.last != at || &bucket_of(entry_at(at).hash) != &b) continue;
      out = {key_of(entry_at(at)), value_of(entry_at(at))};
      unlink(b, at);
    }
    free_entry(at);
    return out;
  }
}

std::string dict_node::setdefault(const std::string& key, const std::string& value) {
  check_usable();
  const std::uint64_t hash = key_hash(key);
  bucket& b = bucket_of(hash);
  locked guard(*this, b.lock);
  if (const std::uint64_t at = find(b, hash, key)) return value_of(entry_at(at));
  insert(b, hash, key, value);
  return value;
}

std::uint64_t dict_node::size() {
  check_usable();
  return std::atomic_ref<std::uint64_t>(head().count).load();
}

void dict_node::clear() {
  check_usable();
  all_locked everything(*this);
  header& h = head();
  for (std::uint64_t at = h.first; at != 0;) {
    const entry& e = entry_at(at);
    const std::uint64_t after = e.after;
    bucket_of(e.hash).head = 0;
    free_entry(at);
    at = after;
  }
  h.first = h.last = 0;
  std::atomic_ref<std::uint64_t>(h.count).store(0);
}

std::vector<std::pair<std::string, std::string>> dict_node::entries() {
  check_usable();
  std::vector<std::pair<std::string, std::string>> out;
  all_locked everything(*this);
  for (std::uint64_t at = head().first; at != 0; at = entry_at(at).after)
    out.emplace_back(key_of(entry_at(at)), value_of(entry_at(at)));
  return out;
}

std::vector<std::string> dict_node::keys_or_values(bool keys) {
  check_usable();
  std::vector<std::string> out;
  all_locked everything(*this);
  for (std::uint64_t at = head().first; at != 0; at = entry_at(at).after)
    out.push_back(keys ? key_of(entry_at(at)) : value_of(entry_at(at)));
  return out;
}

std::unique_ptr<dict_store> make_dict_store(const communicator& comm) {
  auto memory = std::make_unique<shared_segment>(comm, shared_segment::reserve_tag{}, dict_node::reserved_bytes());
  if (memory->mapped_word(0, 0)) return std::make_unique<dict_node>(std::move(memory));
  memory.reset();  // collective, as its making was
  return std::make_unique<dict_served>(comm);
}

}  // namespace mpiproc::detail
