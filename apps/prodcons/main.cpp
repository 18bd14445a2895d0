// prodcons: the seed's Queue example. Rank 0 is the producer, every other rank a consumer. The
// producer puts items into a shared queue and closes it: no sentinel to pass around, each consumer
// stops when get() comes back empty. Rank 0 then checks that every item was taken exactly once.
// With -n, the producer puts N numbers as fast as it can and the program reports the rate.
#include <app.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

/// The seed: five strings, put slowly; each consumer says what it took.
void seed(const mpiproc::communicator& world, const mpiproc::queue_options& options, double delay) {
  constexpr std::int64_t items = 5;
  mpiproc::queue<std::string> queue(world, options);
  std::int64_t taken = 0;
  const auto producer = [&](const mpiproc::communicator&) {
    for (std::int64_t i = 1; i <= items; ++i) {
      const std::string item = "item " + std::to_string(i);
      queue.put(item);
      std::printf("producer %d put %s\n", world.rank(), item.c_str());
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    }
    queue.close();
  };
  const auto consumer = [&](const mpiproc::communicator&) {
    while (auto item = queue.get()) {
      std::printf("consumer %d took %s\n", world.rank(), item->c_str());
      ++taken;
    }
  };
  mpiproc::run_roles(world, {{"producer", 1, producer}, {"consumers", mpiproc::remaining_ranks, consumer}});

  // What each rank took, gathered on rank 0: the queue's own counts would not show a lost item.
  std::vector<std::int64_t> by_rank(static_cast<std::size_t>(world.size()));
  MPI_Gather(&taken, 1, MPI_INT64_T, by_rank.data(), 1, MPI_INT64_T, 0, world.native());
  if (world.rank() != 0) return;
  std::int64_t total = 0;
  std::string split;
  for (std::size_t r = 1; r < by_rank.size(); ++r) {
    total += by_rank[r];
    split += (r > 1 ? " " : "") + std::to_string(r) + ":" + std::to_string(by_rank[r]);
  }
  std::printf("items put %lld, taken %lld (by rank: %s)\n", static_cast<long long>(items),
              static_cast<long long>(total), split.c_str());
  // Only rank 0 knows the totals: its error aborts the others.
  if (total != items) throw mpiproc::error("items were lost or taken twice");
}

/// N numbers as fast as they go: each consumer counts and sums what it took, and checks that they
/// came in the order they were put.
void volume(const mpiproc::communicator& world, const mpiproc::queue_options& options, std::int64_t items) {
  mpiproc::queue<std::int64_t> queue(world, options);
  std::int64_t taken[2] = {0, 0};  // count, sum
  const auto producer = [&](const mpiproc::communicator&) {
    for (std::int64_t i = 0; i < items; ++i) queue.put(i);
    queue.close();
  };
  const auto consumer = [&](const mpiproc::communicator&) {
    std::int64_t last = -1;
    while (auto item = queue.get()) {
      // Thrown inside a role, so every rank reports it once, as a remote_error.
      if (*item <= last) throw mpiproc::error("item " + std::to_string(*item) + " came after " + std::to_string(last));
      last = *item;
      ++taken[0];
      taken[1] += *item;
    }
  };
  world.barrier();
  const double start = app::now();
  mpiproc::run_roles(world, {{"producer", 1, producer}, {"consumers", mpiproc::remaining_ranks, consumer}});
  const double seconds = app::now() - start;

  std::int64_t total[2] = {0, 0};
  MPI_Reduce(taken, total, 2, MPI_INT64_T, MPI_SUM, 0, world.native());
  if (world.rank() != 0) return;
  const std::int64_t expected = items * (items - 1) / 2;
  const bool ok = total[0] == items && total[1] == expected;
  std::printf("items: %lld taken: %lld sum: %lld expected: %lld  %s\n", static_cast<long long>(items),
              static_cast<long long>(total[0]), static_cast<long long>(total[1]), static_cast<long long>(expected),
              ok ? "ok" : "WRONG");
  std::printf("time: %.6f s  items/s: %.0f\n", seconds, static_cast<double>(items) / seconds);
  // Only rank 0 knows the totals: its error aborts the others.
  if (!ok) throw mpiproc::error("items were lost or taken twice");
}

}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Rank 0 puts items into a shared queue and closes it; the other ranks take them until\n"
               "the queue ends (multiprocessing.Queue with a producer and consumers). Rank 0 checks that\n"
               "every item was taken exactly once. With -n, N numbers as fast as they go, and the rate.\n"
               "Example: mpirun -np 3 prodcons;  mpirun -np 4 prodcons -n 1000000",
               "prodcons"};
  std::int64_t items = 0;
  double delay = 0.1;
  std::uint64_t capacity = 0;
  cli.add_option("-n,--items", items, "Volume mode: this many numbers, as fast as they go")
      ->transform(app::whole_number(std::int64_t{1}, std::int64_t{1'000'000'000}));
  cli.add_option("--delay", delay, "Seconds between the producer's puts (the seed: 0.5; not with -n)")
      ->transform(app::seconds(0.0, 3600.0))
      ->capture_default_str();
  // On one node rank 0 makes the queue's whole ring at once, a slot per item of the capacity (up to
  // 256 bytes each for the seed's strings): 10,000,000 would take gigabytes for 5 items.
  cli.add_option("--capacity", capacity,
                 "Items the queue holds at most (0: as many as its ring holds on one node); at most 1048576, since "
                 "rank 0 sets aside room for all of them at once (up to 256 bytes an item)")
      ->transform(app::whole_number(std::uint64_t{0}, std::uint64_t{1} << 20))
      ->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "prodcons", [&] {
    if (world.size() < 2)
      throw mpiproc::usage_error("needs a producer and a consumer: run with 2 ranks or more (mpirun -np 3)");
    const mpiproc::queue_options options{.capacity = capacity};
    if (items > 0)
      volume(world, options, items);
    else
      seed(world, options, delay);
  });
}
