// squares: the seed's first Pool.map, the squares of 0..9, gathered in input order.
#include <app.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Print the squares of 0..N-1 in order, computed over the MPI ranks (Pool.map).\n"
               "Example: mpirun -np 3 squares",
               "squares"};
  long count = 10;
  cli.add_option("-n,--count", count, "How many squares")->transform(app::whole_number(0L, 100'000'000L))->capture_default_str();
  bool sum_only = false;
  cli.add_flag("--sum", sum_only, "Print only the sum of the squares modulo 2^64 instead of the list (for large N)");
  app::schedule_option schedule{cli, "cyclic"};
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "squares", [&] {
    const double start = app::now();
    const auto squares = mpiproc::map_root(world, 0, mpiproc::range<long>{0, count},
                                           [](long i) { return i * i; }, schedule.get());
    const double seconds = app::now() - start;
    if (world.rank() == 0 && sum_only) {
      std::uint64_t sum = 0;  // wraps modulo 2^64, as the comparison suite's other forms
      for (const long s : squares) sum += static_cast<std::uint64_t>(s);
      std::printf("sum of the squares of [0, %ld) modulo 2^64: %llu\n", count, static_cast<unsigned long long>(sum));
    } else if (world.rank() == 0) {
      std::printf("%s\n", app::python_list(squares).c_str());
    }
    app::report(world, schedule.get().name(), seconds);
  });
}
