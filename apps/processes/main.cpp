// processes: the seed's Process example. Rank 0 starts two processes, task1 (three steps of one
// time unit) and task2 (two steps of 1.5 units), and joins them; they run as tasks of a task pool,
// on whichever ranks are free, and print their progress with their rank and process id.
#include <app.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Rank 0 starts two processes (task1: 3 steps of 1 unit, task2: 2 steps of 1.5 units) and joins\n"
               "them, as the seed's multiprocessing.Process example does; they run on whichever ranks are free.\n"
               "Example: mpirun -np 3 processes --unit 0.2",
               "processes"};
  double unit = 1.0;
  cli.add_option("--unit", unit, "Seconds in one step's unit of time")->transform(app::seconds(0.0, 60.0))->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "processes", [&] {
    mpiproc::task_pool pool(world);
    const auto step = [&](const char* name, int steps, double units) {
      std::printf("rank %d, process ID %d - %s started\n", world.rank(), static_cast<int>(getpid()), name);
      std::fflush(stdout);
      for (int i = 1; i <= steps; ++i) {
        std::this_thread::sleep_for(std::chrono::duration<double>(units * unit));
        std::printf("rank %d, process ID %d - %s running... (%d/%d)\n", world.rank(), static_cast<int>(getpid()), name,
                    i, steps);
        std::fflush(stdout);
      }
      std::printf("rank %d, process ID %d - %s done\n", world.rank(), static_cast<int>(getpid()), name);
      std::fflush(stdout);
      return steps;
    };
    const auto task1 = pool.define([&] { return step("Task 1", 3, 1.0); });
    const auto task2 = pool.define([&] { return step("Task 2", 2, 1.5); });
    if (world.rank() == 0) {
      std::printf("--- Process example start ---\n");
      std::fflush(stdout);
      const auto start = std::chrono::steady_clock::now();
      mpiproc::process p1(pool, task1), p2(pool, task2);
      p1.start();
      p2.start();
      p1.join();
      p2.join();
      const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("every process done (exit codes %d and %d, steps %d and %d) in %.2f s; main process ends.\n",
                  *p1.exitcode(), *p2.exitcode(), p1.result(), p2.result(), took);
      std::printf("--- Process example end ---\n");
    }
    pool.close();
  });
}
