// factorials: k! for every k in [1, K] in arbitrary precision (GMP), the seed's Pool load of
// 12,000 factorials. Prints a checksum: the sum over k of the bit length of k!.
#include <app.hpp>
#include <workloads.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Compute k! for every k in [1, K] exactly and print the sum of their bit lengths.\n"
               "Example: mpirun -np 4 factorials --max 12000",
               "factorials"};
  long max = 12'000;
  cli.add_option("-k,--max", max, "Largest k")->transform(app::whole_number(1L, 10'000'000L))->capture_default_str();
  app::schedule_option schedule{cli, "dynamic"};
  app::checkpoint_option checkpoint{cli, "factorial bit lengths"};
  app::progress_option progress{cli, "factorials"};
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "factorials", [&] {
    const double start = app::now();
    std::int64_t computed = 0;  // items this rank computed in this run (the rest a checkpoint held)
    const std::uint64_t checksum = mpiproc::map_reduce(
        world, mpiproc::range<long>{1, max + 1},
        [&computed](long k) {
          ++computed;
          return workloads::factorial_bits(static_cast<unsigned long>(k));
        },
        std::plus<>{}, schedule.get(), {checkpoint.get(), progress.get()});
    const double seconds = app::now() - start;
    if (world.rank() == 0)
      std::printf("factorials of [1, %ld]: sum of bit lengths %llu\n", max, static_cast<unsigned long long>(checksum));
    checkpoint.report(world, computed, max);
    app::report(world, schedule.get().name(), seconds);
  });
}
