// Shared state, queues, pipes and dicts used after the MPI environment has ended are a
// usage_error, not a crash or a hang, as are collective calls on a communicator kept past it and a
// new environment; destroying them then is harmless.
#include <mpiproc/mpiproc.hpp>

#include <cstdio>
#include <functional>
#include <optional>

int main(int argc, char** argv) {
  std::optional<mpiproc::counter> counter;
  std::optional<mpiproc::lock> lock;
  std::optional<mpiproc::value<double>> value;
  std::optional<mpiproc::array<int>> array;
  std::optional<mpiproc::queue<int>> queue;
  std::optional<mpiproc::pipe<int>> pipe;
  std::optional<mpiproc::shared_dict<int, int>> dict;
  std::optional<mpiproc::communicator> kept;
  int failures = 0;
  {
    mpiproc::environment env{argc, argv};
    const auto world = env.world();
    counter.emplace(world);
    lock.emplace(world);
    value.emplace(world, 1.5);
    array.emplace(world, 10, mpiproc::layout::blocks);
    queue.emplace(world);
    if (world.size() > 1) pipe.emplace(world, 0, 1);
    dict.emplace(world);
    kept.emplace(world);
    queue->put(world.rank());
    dict->set(world.rank(), 1);
    counter->fetch_add(1);
    world.barrier();
    if (counter->load() != world.size()) ++failures;
  }  // MPI_Finalize frees what they hold

  auto expect_usage_error = [&](const char* what, const std::function<void()>& use) {
    try {
      use();
      std::fprintf(stderr, "FAILED: %s after MPI_Finalize did not throw\n", what);
      ++failures;
    } catch (const mpiproc::usage_error& e) {
      std::printf("%s after MPI_Finalize: usage_error: %s\n", what, e.what());
    }
  };
  expect_usage_error("counter.fetch_add", [&] { counter->fetch_add(1); });
  expect_usage_error("lock.lock", [&] { lock->lock(); });
  expect_usage_error("value.load", [&] { value->load(); });
  expect_usage_error("array.read", [&] { array->read(); });
  expect_usage_error("queue.get", [&] { queue->get(); });
  expect_usage_error("dict.get", [&] { dict->get(0); });
  if (pipe && pipe->can_send()) expect_usage_error("pipe.send", [&] { pipe->send(1); });
  // Collective calls and new objects on a communicator kept past the end (MPI itself would abort).
  expect_usage_error("communicator.barrier", [&] { kept->barrier(); });
  expect_usage_error("map_reduce", [&] {
    mpiproc::map_reduce(*kept, mpiproc::range<int>{0, 10}, [](int i) { return i; }, std::plus<>{});
  });
  expect_usage_error("map", [&] { mpiproc::map(*kept, mpiproc::range<int>{0, 10}, [](int i) { return i; }); });
  expect_usage_error("new lock", [&] { mpiproc::lock another(*kept); });
  expect_usage_error("new queue", [&] { mpiproc::queue<int> another(*kept); });
  expect_usage_error("new environment", [&] { mpiproc::environment again; });
  expect_usage_error("new communicator", [&] { mpiproc::communicator again{MPI_COMM_WORLD}; });
  kept.reset();
  counter.reset();
  lock.reset();
  value.reset();
  array.reset();
  queue.reset();
  pipe.reset();
  dict.reset();
  return failures == 0 ? 0 : 1;
}
