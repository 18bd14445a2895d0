// primes: count and sum the primes in [1, N] by trial division, as the seed's Pool(4) example does.
#include <app.hpp>
#include <workloads.hpp>

#include <cstdio>
#include <vector>

namespace {

struct tally {
  std::int64_t count = 0;
  std::int64_t sum = 0;
  friend tally operator+(const tally& a, const tally& b) { return {a.count + b.count, a.sum + b.sum}; }
};

}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Count and sum the primes in [1, N] by trial division, spread over the MPI ranks.\n"
               "Example: mpirun -np 4 primes -n 1000000 --schedule dynamic",
               "primes"};
  std::int64_t n = 10'000'000;
  bool list = false;
  cli.add_option("-n,--max", n, "Upper end N of [1, N]")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1} << 40))->capture_default_str();
  cli.add_flag("--list", list, "Also print every prime, in order");
  app::schedule_option schedule{cli, "dynamic"};
  app::checkpoint_option checkpoint{cli, "primes by trial division"};
  app::progress_option progress{cli, "primes"};
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "primes", [&] {
    const double start = app::now();
    const mpiproc::range<std::int64_t> numbers{1, n + 1};
    tally total;
    std::int64_t computed = 0;  // items this rank computed in this run (the rest a checkpoint held)
    if (list) {
      const std::vector<char> flags = mpiproc::map_root(
          world, 0, numbers,
          [&computed](std::int64_t i) -> char {
            ++computed;
            return workloads::is_prime(i);
          },
          schedule.get(), {checkpoint.get(), progress.get()});
      for (std::size_t k = 0; k < flags.size(); ++k)
        if (flags[k]) {
          const auto p = numbers.at_offset(static_cast<std::int64_t>(k));
          std::printf("%lld\n", static_cast<long long>(p));
          total = total + tally{1, p};
        }
    } else {
      total = mpiproc::map_reduce(
          world, numbers,
          [&computed](std::int64_t i) {
            ++computed;
            return workloads::is_prime(i) ? tally{1, i} : tally{};
          },
          mpiproc::reduction{std::plus<>{}, tally{}}, schedule.get(), {checkpoint.get(), progress.get()});
    }
    const double seconds = app::now() - start;
    if (world.rank() == 0)
      std::printf("primes in [1, %lld]: %lld primes, sum %lld\n", static_cast<long long>(n),
                  static_cast<long long>(total.count), static_cast<long long>(total.sum));
    checkpoint.report(world, computed, n);
    app::report(world, schedule.get().name(), seconds);
  });
}
