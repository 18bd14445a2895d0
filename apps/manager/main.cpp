// manager: the seed's Manager example. A shared dict and a shared list of 0..9 (a Manager's dict()
// and list()); a worker rank sets three keys and reverses the list, and after the join rank 0
// prints both. With --updates, every rank then increments one key of a shared dict N times
// atomically, and rank 0 checks that no increment was lost.
#include <app.hpp>

#include <cstdint>
#include <cstdio>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

namespace {

/// A dict as Python prints one of strings: {'k': 'v', ...}.
std::string python_dict(const std::map<std::string, std::string>& dict) {
  std::string out = "{";
  for (const auto& [key, value] : dict) out += (out.size() > 1 ? ", '" : "'") + key + "': '" + value + "'";
  return out + "}";
}

}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"A worker rank fills a shared dict and reverses a shared list; after the join rank 0\n"
               "prints both (multiprocessing.Manager's dict() and list()). With --updates N, every rank\n"
               "then increments a shared dict entry N times; rank 0 checks the total.\n"
               "Example: mpirun -np 2 manager;  mpirun -np 4 manager --updates 10000",
               "manager"};
  long updates = 0;
  cli.add_option("--updates", updates, "Atomic increments of one dict entry per rank (0: none)")
      ->transform(app::whole_number(0L, 1'000'000'000L))
      ->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "manager", [&] {
    if (world.size() < 2)
      throw mpiproc::usage_error("the worker needs a rank of its own: run with 2 ranks or more (mpirun -np 2)");
    // The seed's keys are 1, '2' and 0.25 with values '1', 2 and None: here all strings, as Python
    // would print them.
    mpiproc::shared_dict<std::string, std::string> d(world);
    std::vector<int> start(10);
    std::iota(start.begin(), start.end(), 0);
    mpiproc::shared_list<int> l(world, start);

    const auto f = [&](const mpiproc::communicator&) {
      d.set("1", "1");
      d.set("2", "2");
      d.set("0.25", "None");
      l.reverse();
    };
    // The main role's own work is the join, which run_roles does on every rank.
    mpiproc::run_roles(world, {{"main", 1, {}}, {"worker", 1, f}});
    if (world.rank() == 0) {
      std::printf("%s\n", python_dict(d.snapshot()).c_str());
      std::printf("%s\n", app::python_list(l.snapshot()).c_str());
    }
    if (updates == 0) return;

    mpiproc::shared_dict<std::string, std::int64_t> counts(world);
    world.barrier();
    const double start_time = app::now();
    for (long i = 0; i < updates; ++i)
      counts.update("counter", [](std::optional<std::int64_t> value) { return value.value_or(0) + 1; });
    world.barrier();
    const double seconds = app::now() - start_time;
    if (world.rank() != 0) return;
    const std::int64_t expected = static_cast<std::int64_t>(updates) * world.size();
    const std::int64_t value = counts.at("counter");
    std::printf("counter: %lld (expected %lld)\n", static_cast<long long>(value), static_cast<long long>(expected));
    std::printf("dict updates/s: %.0f\n", static_cast<double>(expected) / seconds);
    // Rank 0 alone read the total: its error aborts the others.
    if (value != expected) throw mpiproc::error("dict updates were lost");
  });
}
