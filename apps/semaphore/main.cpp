// semaphore: the seed's Semaphore example. Workers (6 by default, spread over the ranks) each hold
// one of 2 slots for a while; a shared counter tracks how many are inside at once. Prints the
// highest concurrency observed, which must not exceed the slots.
#include <app.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Workers over the ranks take turns in a section guarded by a semaphore of a few slots;\n"
               "prints the highest number inside at once (never more than the slots).\n"
               "Worker k runs on rank k % ranks; a rank runs its workers one after another.\n"
               "Example: mpirun -np 6 semaphore",
               "semaphore"};
  int workers = 6, slots = 2;
  double hold = 0.5;
  bool verbose = false;
  cli.add_option("-w,--workers", workers, "Workers in all")->transform(app::whole_number(1, 1'000'000))->capture_default_str();
  cli.add_option("-s,--slots", slots, "Workers allowed inside at once")->transform(app::whole_number(1, 1'000'000))->capture_default_str();
  cli.add_option("--hold", hold, "Seconds each worker stays inside (the seed: 2)")->transform(app::seconds(0.0, 3600.0))->capture_default_str();
  cli.add_flag("-v,--verbose", verbose, "Print each worker's start and end");
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "semaphore", [&] {
    mpiproc::semaphore sem(world, static_cast<std::uint64_t>(slots));
    mpiproc::counter inside(world), highest(world), done(world);
    world.barrier();
    const double start = app::now();
    for (int worker = world.rank(); worker < workers; worker += world.size()) {
      sem.acquire();
      const std::int64_t now = inside.fetch_add(1) + 1;
      for (std::int64_t seen = highest.load(); now > seen && !highest.compare_exchange(seen, now);) {
      }
      if (verbose) std::printf("worker %d (rank %d): in, %lld inside\n", worker + 1, world.rank(), static_cast<long long>(now));
      std::this_thread::sleep_for(std::chrono::duration<double>(hold));
      inside.fetch_sub(1);
      done.fetch_add(1);
      if (verbose) std::printf("worker %d (rank %d): out\n", worker + 1, world.rank());
      sem.release();
    }
    world.barrier();
    const double seconds = app::now() - start;
    const std::int64_t most = highest.load();
    if (world.rank() == 0) {
      std::printf("%lld workers, at most %d at a time: highest concurrency observed %lld\n",
                  static_cast<long long>(done.load()), slots, static_cast<long long>(most));
      std::printf("ranks: %d  time: %.3f s\n", world.size(), seconds);
    }
    if (most > slots) throw std::runtime_error("the semaphore admitted more workers than it has slots");
  });
}
