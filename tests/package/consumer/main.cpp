// A program outside the mpiproc tree, built against the installed or exported package.
#include <mpiproc/mpiproc.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();
  const long sum = mpiproc::map_reduce(world, mpiproc::range<long>{1, 101}, [](long i) { return i; }, std::plus<>{},
                                       mpiproc::schedule::dynamic());
  if (world.rank() == 0) std::printf("consumer: sum %ld on %d ranks\n", sum, world.size());
  return sum == 5050 ? 0 : 1;
}
