// rangesum: the sum of [first, last), repeated, as the seed's two-Process example (whose results
// never came back to the parent and so "summed" to 0) meant to compute.
#include <app.hpp>

#include <cstdio>

// Sums of 64-bit ranges overflow 64 bits; 128 bits hold any of them exactly.
__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Sum the integers in [first, last), --repeat times, spread over the MPI ranks.\n"
               "Example: mpirun -np 2 rangesum --repeat 2",
               "rangesum"};
  std::int64_t first = 0, last = 50'000'000;
  int repeat = 2;
  cli.add_option("--first", first, "First integer of the range")->capture_default_str();
  cli.add_option("--last", last, "One past the last integer of the range")->capture_default_str();
  cli.add_option("--repeat", repeat, "How many times to compute the sum")->check(CLI::Range(1, 1'000'000))->capture_default_str();
  app::schedule_option schedule{cli, "block"};
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "rangesum", [&] {
    const double start = app::now();
    const mpiproc::range<std::int64_t> numbers{first, last};  // usage_error (exit 2) if last < first
    int128 total = 0;
    for (int k = 0; k < repeat; ++k) {
      const int128 sum = mpiproc::map_reduce(world, numbers, [](std::int64_t i) { return static_cast<int128>(i); },
                                             mpiproc::reduction{std::plus<>{}, int128{0}}, schedule.get());
      if (__builtin_add_overflow(total, sum, &total))
        throw mpiproc::usage_error("the total over all repeats does not fit in 128 bits; use fewer --repeat");
    }
    const double seconds = app::now() - start;
    if (world.rank() == 0) {
      // printf has no 128-bit conversion; print the digits ourselves.
      char digits[48];
      int pos = sizeof digits - 1;
      digits[pos] = '\0';
      const bool negative = total < 0;
      uint128 magnitude = negative ? -static_cast<uint128>(total) : static_cast<uint128>(total);
      do {
        digits[--pos] = static_cast<char>('0' + static_cast<int>(magnitude % 10));
        magnitude /= 10;
      } while (magnitude != 0);
      if (negative) digits[--pos] = '-';
      std::printf("sum of [%lld, %lld) x %d = %s\n", static_cast<long long>(first), static_cast<long long>(last), repeat,
                  digits + pos);
    }
    app::report(world, schedule.get().name(), seconds);
  });
}
