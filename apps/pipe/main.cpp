// pipe: the seed's Pipe example between ranks 0 and 1. First a one-way pipe: rank 0 sends four
// words and closes, rank 1 receives until the end of stream (Python's EOFError). Then a duplex
// pipe: each side says hello and reads the other's reply. --mode pingpong and bandwidth measure a
// pipe's round trip and throughput instead. Ranks past 1 take no part.
#include <app.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

void seed(const mpiproc::communicator& world) {
  // Every rank makes both pipes (construction is collective); only ranks 0 and 1 get ends.
  mpiproc::pipe<std::string> one_way(world, 0, 1, mpiproc::pipe_mode::one_way);
  mpiproc::pipe<std::string> duplex(world, 0, 1, mpiproc::pipe_mode::duplex);

  if (world.rank() == 0) {
    for (const char* message : {"hello", "pipe", "example", "data"}) {
      one_way.send(message);
      std::printf("sent: %s\n", message);
    }
    one_way.close();
  } else if (world.rank() == 1) {
    while (auto message = one_way.recv()) std::printf("received: %s\n", message->c_str());
    std::printf("end of stream\n");
  }

  if (world.rank() == 0) {  // the seed's worker1
    duplex.send("worker 1 here, hello!");
    std::printf("worker 1 received: %s\n", duplex.recv().value_or("(end of stream)").c_str());
    duplex.close();
  } else if (world.rank() == 1) {  // the seed's worker2
    std::printf("worker 2 received: %s\n", duplex.recv().value_or("(end of stream)").c_str());
    duplex.send("worker 2 here, bye!");
    duplex.close();
  }
}

void pingpong(const mpiproc::communicator& world, long rounds) {
  mpiproc::pipe<std::int64_t> duplex(world, 0, 1);
  world.barrier();
  const double start = app::now();
  if (world.rank() == 0) {
    for (std::int64_t i = 0; i < rounds; ++i) {
      duplex.send(i);
      // The echo must be this round's: anything else is a lost or reordered message.
      if (duplex.recv() != i) throw mpiproc::error("round " + std::to_string(i) + " got another round's answer");
    }
    const double seconds = app::now() - start;
    std::printf("round trip: %.2f us (%ld rounds)  time: %.6f s\n", seconds / static_cast<double>(rounds) * 1e6, rounds,
                seconds);
  } else if (world.rank() == 1) {
    for (std::int64_t value = 0; duplex.recv(value);) duplex.send(value);
  }
  duplex.close();  // ends rank 1's loop
}

void bandwidth(const mpiproc::communicator& world, long rounds, long bytes) {
  mpiproc::pipe<std::vector<char>> data(world, 0, 1, mpiproc::pipe_mode::one_way);
  mpiproc::pipe<std::int64_t> ack(world, 1, 0, mpiproc::pipe_mode::one_way);
  world.barrier();
  const double start = app::now();
  if (world.rank() == 0) {
    const std::vector<char> message(static_cast<std::size_t>(bytes), 'x');
    for (long i = 0; i < rounds; ++i) data.send(message);
    data.close();
    // The time ends when rank 1 has everything, not when the last send returns.
    const std::int64_t received = ack.recv().value_or(-1);
    const double seconds = app::now() - start;
    if (received != static_cast<std::int64_t>(rounds) * bytes)
      throw mpiproc::error("rank 1 received " + std::to_string(received) + " bytes");
    std::printf("bandwidth: %.3f GiB/s (%ld messages of %ld bytes)  received: %lld bytes  time: %.6f s\n",
                static_cast<double>(rounds) * static_cast<double>(bytes) / seconds / (1u << 30), rounds, bytes,
                static_cast<long long>(received), seconds);
  } else if (world.rank() == 1) {
    std::vector<char> into;  // recv(into) reuses its memory from one message to the next
    std::int64_t received = 0;
    while (data.recv(into)) received += static_cast<std::int64_t>(into.size());
    ack.send(received);
    ack.close();
  }
}

}  // namespace

int main(int argc, char** argv) {
  mpiproc::environment env{argc, argv};
  const auto world = env.world();

  CLI::App cli{"Ranks 0 and 1 talk over pipes (multiprocessing.Pipe): the seed's one-way and duplex\n"
               "example, or a round-trip or bandwidth measurement. Other ranks take no part.\n"
               "Example: mpirun -np 2 pipe;  mpirun -np 2 pipe --mode bandwidth --size 8388608",
               "pipe"};
  std::string mode = "seed";
  long rounds = 0, size = 1 << 20;
  cli.add_option("--mode", mode, "seed, pingpong or bandwidth")
      ->check(CLI::IsMember({"seed", "pingpong", "bandwidth"}))
      ->capture_default_str();
  cli.add_option("--rounds", rounds, "Round trips (pingpong, default 100000) or messages (bandwidth, default 200)")
      ->transform(app::whole_number(1L, 1'000'000'000L));
  cli.add_option("--size", size, "Bytes per message (bandwidth)")
      ->transform(app::whole_number(0L, 1L << 30))
      ->capture_default_str();
  if (auto code = app::parse(cli, argc, argv, world)) return *code;

  return app::run(world, "pipe", [&] {
    if (world.size() < 2) throw mpiproc::usage_error("a pipe needs two ends: run with 2 ranks or more (mpirun -np 2)");
    if (mode == "seed")
      seed(world);
    else if (mode == "pingpong")
      pingpong(world, rounds ? rounds : 100'000);
    else
      bandwidth(world, rounds ? rounds : 200, size);
  });
}
