#pragma once

// The conventions every mpiproc program follows: --help, a usage message and exit code 2 on bad
// input (printed once, by rank 0), errors from any rank reported once with the rank that failed.

#include <mpiproc/mpiproc.hpp>

#include <CLI/CLI.hpp>
#include <mpi.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace app {

inline constexpr int exit_usage = 2;

/// Parses the command line on every rank. Returns an exit code when the program should stop now
/// (0 after --help, 2 after bad input), std::nullopt to go on.
inline std::optional<int> parse(CLI::App& cli, int argc, char** argv, const mpiproc::communicator& world) {
  try {
    cli.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    if (world.rank() == 0) std::fputs(cli.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (world.rank() == 0) std::fprintf(stderr, "%s: %s\n\n%s", cli.get_name().c_str(), e.what(), cli.help().c_str());
    return exit_usage;
  }
}

/// Adds --schedule (block, cyclic, dynamic, guided) and --chunk to `cli`.
struct schedule_option {
  std::string name;
  std::int64_t chunk = 0;

  schedule_option(CLI::App& cli, std::string default_name) : name(std::move(default_name)) {
    cli.add_option("--schedule", name, "How items are split over the ranks")
        ->check(CLI::IsMember({"block", "cyclic", "dynamic", "guided"}))
        ->capture_default_str();
    cli.add_option("--chunk", chunk, "Chunk size for cyclic/dynamic (minimum chunk for guided); 0 = automatic")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
  }

  mpiproc::schedule get() const {
    if (chunk == 0) return mpiproc::schedule::from_name(name);
    if (name == "cyclic") return mpiproc::schedule::cyclic(chunk);
    if (name == "dynamic") return mpiproc::schedule::dynamic(chunk);
    if (name == "guided") return mpiproc::schedule::guided(chunk);
    return mpiproc::schedule::block();
  }
};

/// Runs the program's body and turns errors into one clear message and a non-zero exit code:
/// 2 for bad input (usage_error), 1 for anything else. An error that only this rank saw (not a
/// remote_error, which every rank holds) aborts all ranks: the others may be waiting for this one
/// in a collective or on shared state, and would otherwise wait forever.
inline int run(const mpiproc::communicator& world, const char* program, const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const mpiproc::remote_error& e) {
    // Every rank holds the same error: say it once.
    if (world.rank() == 0) std::fprintf(stderr, "%s: error on %s\n", program, e.what());
    return 1;
  } catch (const mpiproc::usage_error& e) {
    if (world.rank() == 0) std::fprintf(stderr, "%s: %s\n", program, e.what());
    return exit_usage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error on rank %d: %s\n", program, world.rank(), e.what());
    std::fflush(stderr);
    MPI_Abort(world.native(), 1);
    return 1;
  }
}

/// Seconds since an arbitrary point, the same clock on every rank.
inline double now() { return MPI_Wtime(); }

/// Numbers as Python prints a list of them: [0, 1, 4].
template <class Numbers>
std::string python_list(const Numbers& numbers) {
  std::string out = "[";
  for (const auto& n : numbers) out += (out.size() > 1 ? ", " : "") + std::to_string(n);
  return out + "]";
}

/// The footer every program prints: rank count, schedule and elapsed time.
inline void report(const mpiproc::communicator& world, const char* schedule, double seconds) {
  if (world.rank() == 0) std::printf("ranks: %d  schedule: %s  time: %.3f s\n", world.size(), schedule, seconds);
}

}  // namespace app
