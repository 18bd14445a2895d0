// counter: the seed's Lock example. Every rank adds 1 to a shared counter N times, under a lock
// (read, add, write: a multiprocessing.Value with a Lock) and with an atomic fetch_add; prints the
// final values (4 ranks x 100,000 = 400,000) and the increments per second of each way.
#include <app.hpp>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace {

/// Runs `increment` n times on every rank between two barriers; returns the seconds it took.
template <class Increment>
double timed(const mpiproc::communicator& world, long n, Increment increment) {
  world.barrier();
  const double start = app::now();
  for (long i = 0; i < n; ++i) increment();
  world.barrier();
  return app::now() - start;
}

void print(const mpiproc::communicator& world, const char* name, std::int64_t final_value, std::int64_t expected,
           double seconds, const char* note) {
  if (world.rank() != 0) return;
  std::printf("%-9s final value %lld (expected %lld)  %.2f M increments/s  time: %.6f s%s\n", name,
              static_cast<long long>(final_value), static_cast<long long>(expected),
              static_cast<double>(expected) / seconds / 1e6, seconds, note);
}

}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Every rank adds 1 to a shared counter N times: under a lock, with an atomic fetch_add,\n"
               "or (to see the race a lock prevents) unlocked. Prints the final values and the rates.\n"
               "Example: mpirun -np 4 counter",
               "counter"};
  long n = 100'000;
  std::string ways = "lock,atomic";
  cli.add_option("-n,--increments", n, "Increments per rank")->transform(app::whole_number(1L, 1'000'000'000L))->capture_default_str();
  cli.add_option("--ways", ways, "Comma-separated: lock, atomic, unlocked")
      ->check(app::name_list([](const std::string& w) { return w == "lock" || w == "atomic" || w == "unlocked"; }, "way"))
      ->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "counter", [&] {
    const std::int64_t expected = static_cast<std::int64_t>(n) * world.size();
    bool wrong = false;
    for (const std::string& way : app::split_list(ways)) {
      if (way == "atomic") {
        mpiproc::counter shared(world);
        const double seconds = timed(world, n, [&] { shared.fetch_add(1); });
        const std::int64_t final_value = shared.load();
        print(world, "atomic:", final_value, expected, seconds, "");
        wrong = wrong || final_value != expected;
      } else {
        // The seed's shape: a Value, and a Lock around read-add-write.
        mpiproc::value<std::int64_t> shared(world);
        mpiproc::lock lock(world);
        const bool locked = way == "lock";
        const double seconds = timed(world, n, [&] {
          if (locked) {
            std::lock_guard guard(lock);
            shared.store(shared.load() + 1);
          } else {
            shared.store(shared.load() + 1);
          }
        });
        const std::int64_t final_value = shared.load();
        if (locked) {
          print(world, "lock:", final_value, expected, seconds, "");
          wrong = wrong || final_value != expected;
        } else {
          print(world, "unlocked:", final_value, expected, seconds,
                final_value == expected ? "  (no update lost this time)" : "  (updates lost: the race a lock prevents)");
        }
      }
    }
    if (world.rank() == 0) std::printf("ranks: %d  increments per rank: %ld\n", world.size(), n);
    if (wrong) throw std::runtime_error("a locked or atomic counter lost updates");
  });
}
