// shared_value: the seed's Value/Array example. Another rank (the last) sets a shared double to
// 3.1415927 and negates every element of a shared int array [0..9]; rank 0 prints both.
#include <app.hpp>

#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"The last rank changes a shared value and a shared array; rank 0 prints them\n"
               "(multiprocessing's Value('d', 0.0) and Array('i', range(10))).\n"
               "Example: mpirun -np 2 shared_value",
               "shared_value"};
  int length = 10;
  cli.add_option("-n,--length", length, "Array length")->transform(app::whole_number(0, 100'000'000))->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "shared_value", [&] {
    std::vector<int> start(static_cast<std::size_t>(length));
    std::iota(start.begin(), start.end(), 0);
    mpiproc::value<double> num(world, 0.0);
    mpiproc::array<int> arr(world, start);

    if (world.rank() == world.size() - 1) {  // the seed's f(n, a), in another process
      num.store(3.1415927);
      for (std::size_t i = 0; i < arr.size(); ++i) arr.set(i, -arr.get(i));
    }
    world.barrier();  // the seed's p.join()

    if (world.rank() == 0) {
      std::printf("%.7f\n", num.load());
      std::printf("%s\n", app::python_list(arr.read()).c_str());
    }
  });
}
