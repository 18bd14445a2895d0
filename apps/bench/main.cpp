// bench: the seed workloads through mpiproc and through hand-written raw MPI in the same run, per
// schedule, printing both times and the ratio mpiproc / raw (map_reduce.cpp); then shared state (a
// counter's fetch_add, a lock pair, a locked increment) in operations per second next to raw MPI's
// (shared_state.cpp), and the channels (channels.cpp): pipe round trip and bandwidth, queue items,
// dict updates. A benchmark, not a test: it asserts no timing, only that both ways compute the
// same answer.
#include "channels.hpp"
#include "common.hpp"
#include "map_reduce.hpp"
#include "shared_state.hpp"
#include "streaming.hpp"
#include "tasks.hpp"

#include <app.hpp>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Time the seed workloads through mpiproc and through hand-written raw MPI, per schedule,\n"
               "and print the ratio mpiproc / raw (1.00 = no overhead).\n"
               "Example: mpirun -np 4 bench --trials 3",
               "bench"};
  bench::map_reduce_sizes sizes;
  int trials = 5;
  std::string workloads_list = "primes,rangesum,factorials,counter,lock,lock_incr,pipe_rtt,pipe_bw,queue,dict,imap,tasks", schedules_list = "block,cyclic,dynamic,guided";
  cli.add_option("--primes", sizes.primes_n, "N for primes in [1, N]")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1} << 40))->capture_default_str();
  cli.add_option("--rangesum", sizes.sum_last, "rangesum sums [0, this)")->transform(app::whole_number(std::int64_t{1}, std::numeric_limits<std::int64_t>::max()))->capture_default_str();
  cli.add_option("--rangesum-repeat", sizes.sum_repeat, "rangesum repeats per run (the seed: 2)")->transform(app::whole_number(1, 1000))->capture_default_str();
  cli.add_option("--factorials", sizes.fact_max, "K for factorials of [1, K]")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1'000'000}))->capture_default_str();
  std::int64_t stream_n = 100'000'000, task_count = 1'000'000;
  cli.add_option("--imap", stream_n, "imap streams x*x over [0, this) to rank 0")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1} << 40))->capture_default_str();
  cli.add_option("--tasks", task_count, "tasks submits this many empty tasks")->transform(app::whole_number(std::int64_t{1}, std::int64_t{1} << 32))->capture_default_str();
  cli.add_option("--trials", trials, "Runs of each version; the fastest counts")->transform(app::whole_number(1, 100))->capture_default_str();
  cli.add_option("--workloads", workloads_list,
                 "Comma-separated: primes, rangesum, factorials (per schedule); counter (fetch_add), lock (lock + "
                 "unlock), lock_incr (locked increment); pipe_rtt, pipe_bw (1 MiB), queue (1 producer), dict "
                 "(atomic updates), which need 2 ranks; imap (streaming to rank 0, against map and raw MPI); tasks (a task_pool's empty tasks, against a raw MPI task farm and round trip)")
      ->check(app::name_list(
          [](const std::string& w) {
            return bench::is_map_reduce_workload(w) || bench::is_shared_state_workload(w) ||
                   bench::is_channel_workload(w) || bench::is_streaming_workload(w) || bench::is_task_workload(w);
          },
          "workload"))
      ->capture_default_str();
  cli.add_option("--schedules", schedules_list, "Comma-separated: block, cyclic, dynamic, guided")
      ->check(app::name_list(
          [](const std::string& s) { return s == "block" || s == "cyclic" || s == "dynamic" || s == "guided"; },
          "schedule"))
      ->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "bench", [&] {
    std::vector<bench::map_reduce_row> rows;
    const bool rma = bench::raw_rma_works(bench::user_comm);
    const std::vector<std::string> schedules = app::split_list(schedules_list);
    for (const auto& w : app::split_list(workloads_list)) {
      if (bench::is_task_workload(w)) {
        bench::compare_tasks(world, task_count, trials);
      } else if (bench::is_streaming_workload(w)) {
        bench::compare_streaming(world, stream_n, trials);
      } else if (bench::is_channel_workload(w)) {
        bench::compare_channel(world, w, trials);
      } else if (bench::is_shared_state_workload(w)) {
        bench::compare_shared_state(world, w, rma, trials);
      } else {
        const auto more = bench::compare_map_reduce(world, w, schedules, sizes, trials, rma);
        rows.insert(rows.end(), more.begin(), more.end());
      }
    }
    if (world.rank() == 0) std::printf("ranks: %d  at least %d runs of each version (more for short workloads), fastest kept\n", world.size(), trials);
    for (const auto& r : rows)
      if (!r.same) throw std::runtime_error("mpiproc and raw MPI disagree on " + r.workload + "/" + r.schedule);
  });
}
