// squares: the seed's first Pool.map, the squares of 0..9, gathered in input order.
#include <app.hpp>

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
  app::schedule_option schedule{cli, "cyclic"};
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "squares", [&] {
    const double start = app::now();
    const auto squares = mpiproc::map_root(world, 0, mpiproc::range<long>{0, count},
                                           [](long i) { return i * i; }, schedule.get());
    const double seconds = app::now() - start;
    if (world.rank() == 0) {
      std::printf("%s\n", app::python_list(squares).c_str());
    }
    app::report(world, schedule.get().name(), seconds);
  });
}
