// rangesum: the sum of [first, last), repeated, as the seed's two-Process example (whose results
// never came back to the parent and so "summed" to 0) meant to compute. With --roles, the repeats
// run as that example's Processes did, at the same time, each on a group of ranks of its own, and
// each returns its sum (returning_role).
#include <app.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

// Sums of 64-bit ranges overflow 64 bits; 128 bits hold any of them exactly.
__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

namespace {
/// printf has no 128-bit conversion: the digits, by hand.
std::string decimal(int128 value) {
  std::string digits;
  uint128 magnitude = value < 0 ? -static_cast<uint128>(value) : static_cast<uint128>(value);
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude != 0);
  return value < 0 ? "-" + digits : digits;
}
}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Sum the integers in [first, last), --repeat times, spread over the MPI ranks.\n"
               "Example: mpirun -np 2 rangesum --repeat 2",
               "rangesum"};
  std::int64_t first = 0, last = 50'000'000;
  int repeat = 2;
  constexpr auto low = std::numeric_limits<std::int64_t>::min(), high = std::numeric_limits<std::int64_t>::max();
  cli.add_option("--first", first, "First integer of the range")->transform(app::whole_number(low, high))->capture_default_str();
  cli.add_option("--last", last, "One past the last integer of the range")->transform(app::whole_number(low, high))->capture_default_str();
  cli.add_option("--repeat", repeat, "How many times to compute the sum")->transform(app::whole_number(1, 1'000'000))->capture_default_str();
  bool as_roles = false;
  cli.add_flag("--roles", as_roles,
               "Run the repeats at the same time, each on its own group of ranks (the seed's Processes)");
  app::schedule_option schedule{cli, "block"};
  app::progress_option progress{cli, "rangesum"};
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "rangesum", [&] {
    const double start = app::now();
    const mpiproc::range<std::int64_t> numbers{first, last};  // usage_error (exit 2) if last < first
    // With --roles every group's rank 0 would show its own progress: only the plain run shows it.
    // Where no partial sum can leave 64 bits (every |i| times the count stays below 2^63), the sum
    // runs in 64-bit arithmetic, as a hand-written program's would; 128 bits hold any other.
    const int128 widest = std::max(first < 0 ? -static_cast<int128>(first) : int128{first},
                                   last < 0 ? -static_cast<int128>(last) : int128{last});
    const bool fits_64 = widest * (static_cast<int128>(last) - first) < (int128{1} << 63);
    const auto sum_over = [&](const mpiproc::communicator& ranks) -> int128 {
      const auto shown = as_roles ? mpiproc::progress::off() : progress.get();
      if (fits_64)
        return mpiproc::map_reduce(ranks, numbers, [](std::int64_t i) { return i; }, std::plus<>{}, schedule.get(),
                                   shown);
      return mpiproc::map_reduce(ranks, numbers, [](std::int64_t i) { return static_cast<int128>(i); },
                                 mpiproc::reduction{std::plus<>{}, int128{0}}, schedule.get(), shown);
    };
    std::vector<int128> sums;
    if (as_roles) {
      if (world.size() < repeat)
        throw mpiproc::usage_error("--roles runs each repeat on ranks of its own: run with at least " +
                                   std::to_string(repeat) + " ranks (mpirun -np " + std::to_string(repeat) + ")");
      // Each task's sum comes back to every rank: what the seed's Processes lost.
      std::vector<mpiproc::returning_role<int128>> tasks;
      for (int k = 0; k < repeat; ++k)
        tasks.push_back({"task " + std::to_string(k + 1),
                         k + 1 < repeat ? mpiproc::rank_count(world.size() / repeat) : mpiproc::remaining_ranks, sum_over});
      sums = mpiproc::run_roles(world, tasks);
    } else {
      for (int k = 0; k < repeat; ++k) sums.push_back(sum_over(world));
    }
    int128 total = 0;
    for (const int128 sum : sums)
      if (__builtin_add_overflow(total, sum, &total))
        throw mpiproc::usage_error("the total over all repeats does not fit in 128 bits; use fewer --repeat");
    const double seconds = app::now() - start;
    if (world.rank() == 0) {
      if (as_roles)
        for (std::size_t k = 0; k < sums.size(); ++k)
          std::printf("task %zu: %s\n", k + 1, decimal(sums[k]).c_str());
      std::printf("sum of [%lld, %lld) x %d = %s\n", static_cast<long long>(first), static_cast<long long>(last), repeat,
                  decimal(total).c_str());
    }
    app::report(world, schedule.get().name(), seconds);
  });
}
