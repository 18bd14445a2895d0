#pragma once

// The conventions every mpiproc program follows: --help, a usage message and exit code 2 on bad
// input (printed once, by rank 0), errors from any rank reported once with the rank that failed.

#include <mpiproc/mpiproc.hpp>

#include <CLI/CLI.hpp>
#include <mpi.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

namespace app {

inline constexpr int exit_usage = 2;
/// A checkpointed run stopped by SIGTERM or SIGUSR1 after saving its work (sysexits' EX_TEMPFAIL:
/// run it again with the same --checkpoint to finish).
inline constexpr int exit_interrupted = 75;

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

// Numbers on the command line, checked in one place for every program. CLI11 alone reads "010"
// as octal 8 and "0x10" as 16, clamps 99999999999999999999 to 2^63 - 1, and lets nan through a
// range check (every comparison with nan is false); these validators run first, refuse all of
// that with a message, and hand CLI11 the number in plain decimal.

/// The text of a whole number as a person writes it: an optional sign, then decimal digits only
/// ("010" is ten; "0x10", "1e3", "10x", " 10" and "" are not numbers), in [low, high] (never
/// clamped: out of range is an error).
template <class T>
CLI::Validator whole_number(T low, T high) {
  static_assert(std::is_integral_v<T>);
  const std::string range = "[" + std::to_string(low) + ", " + std::to_string(high) + "]";
  return CLI::Validator(
      [low, high, range](std::string& text) -> std::string {
        const bool signed_text = !text.empty() && (text[0] == '+' || text[0] == '-');
        const bool negative = signed_text && text[0] == '-';
        const std::string_view bare = std::string_view(text).substr(signed_text ? 1 : 0);
        const std::string_view digits = std::string_view(text).substr(signed_text && !negative ? 1 : 0);
        if (bare.empty() || bare.find_first_not_of("0123456789") != std::string_view::npos)
          return "'" + text + "' is not a whole number in decimal digits (expected one in " + range + ")";
        T value{};
        const auto [end, failure] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (failure == std::errc::result_out_of_range || (failure == std::errc() && (value < low || value > high)) ||
            (negative && std::is_unsigned_v<T>))
          return text + " is out of range " + range;
        if (failure != std::errc() || end != digits.data() + digits.size())
          return "'" + text + "' is not a whole number in decimal digits (expected one in " + range + ")";
        text = std::to_string(value);  // what CLI11 reads next: no leading zero to take for octal
        return {};
      },
      range);
}

/// A number of seconds in [low, high], finite: "0.5", "2", "1e-3" are; "nan", "inf", "-1",
/// "0x1p3" and "1s" are not.
inline CLI::Validator seconds(double low, double high) {
  std::ostringstream bounds;
  bounds << "[" << low << ", " << high << "]";
  const std::string range = bounds.str();
  return CLI::Validator(
      [low, high, range](std::string& text) -> std::string {
        const std::string_view digits = std::string_view(text).substr(!text.empty() && text[0] == '+' ? 1 : 0);
        double value = 0;
        const auto [end, failure] =
            std::from_chars(digits.data(), digits.data() + digits.size(), value, std::chars_format::general);
        if (failure == std::errc::result_out_of_range) return text + " seconds is out of range " + range;
        if (failure != std::errc() || end != digits.data() + digits.size() || !std::isfinite(value))
          return "'" + text + "' is not a finite number of seconds (expected one in " + range + ")";
        if (!(value >= low && value <= high)) return text + " seconds is out of range " + range;
        char out[64];
        text.assign(out, std::to_chars(out, out + sizeof out, value).ptr);  // exact, for CLI11 to read
        return {};
      },
      range + " s");
}

/// The items of a comma-separated list, empty ones left out.
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

/// A comma-separated list of at least one name, each one that `known` accepts (which returns
/// why not, or "" if it does): "", "," and "lock,,atomic" are refused rather than run as fewer.
inline CLI::Validator name_list(std::function<bool(const std::string&)> known, std::string what) {
  return CLI::Validator(
      [known = std::move(known), what](const std::string& text) -> std::string {
        if (text.empty()) return "an empty list: give at least one " + what;
        std::stringstream in(text + ",");  // so that a trailing comma shows as an empty name
        for (std::string name; std::getline(in, name, ',');) {
          if (name.empty()) return "an empty " + what + " in '" + text + "'";
          if (!known(name)) return "unknown " + what + " '" + name + "'";
        }
        return {};
      },
      "");
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
        ->transform(whole_number<std::int64_t>(0, std::numeric_limits<std::int64_t>::max()))
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

/// Adds --checkpoint FILE to `cli`: the program's map records its progress there and a rerun
/// resumes it (mpiproc::checkpoint).
struct checkpoint_option {
  std::string file;
  std::string tag;

  checkpoint_option(CLI::App& cli, std::string program_tag) : tag(std::move(program_tag)) {
    cli.add_option("--checkpoint", file,
                   "Record progress in FILE; run again with the same FILE to resume after a kill. SIGTERM or SIGUSR1 "
                   "save and exit with status 75");
  }

  mpiproc::checkpoint get() const { return file.empty() ? mpiproc::checkpoint{} : mpiproc::checkpoint{file, tag}; }

  /// With a checkpoint, rank 0 prints how many items this run computed (the rest were saved).
  void report(const mpiproc::communicator& world, std::int64_t computed_here, std::int64_t total) const {
    if (file.empty()) return;
    std::int64_t computed = 0;
    MPI_Reduce(&computed_here, &computed, 1, MPI_INT64_T, MPI_SUM, 0, world.native());
    if (world.rank() == 0)
      std::printf("checkpoint %s: computed %lld of %lld items in this run\n", file.c_str(),
                  static_cast<long long>(computed), static_cast<long long>(total));
  }
};

/// Adds --progress/--no-progress (on by default): rank 0 shows the map's progress on stderr (a bar
/// on a terminal, a line per 10 % in a file such as a Slurm log; mpiproc::progress), only once a
/// call has run 2 s, so that quick runs print nothing and their output stays as it was.
struct progress_option {
  bool on = true;
  std::string label;

  progress_option(CLI::App& cli, std::string program) : label(std::move(program)) {
    cli.add_flag("--progress,!--no-progress", on,
                 "Show the progress of calls that run over 2 s on stderr (on by default; --no-progress: off)");
  }

  mpiproc::progress get() const {
    if (!on) return mpiproc::progress::off();
    mpiproc::progress shown{label};
    shown.quiet_for = std::chrono::seconds(2);
    return shown;
  }
};

/// Runs the program's body and turns errors into one clear message and a non-zero exit code:
/// 2 for bad input (usage_error), 75 when a checkpointed call was interrupted by a signal, 1 for
/// anything else. An error that only this rank saw (not a
/// remote_error, which every rank holds) aborts all ranks: the others may be waiting for this one
/// in a collective or on shared state, and would otherwise wait forever.
inline int run(const mpiproc::communicator& world, const char* program, const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const mpiproc::interrupted& e) {
    // Every rank holds it: the work is saved; say so once.
    if (world.rank() == 0) std::fprintf(stderr, "%s: %s\n", program, e.what());
    return exit_interrupted;
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
  if (world.rank() == 0) std::printf("ranks: %d  schedule: %s  time: %.6f s\n", world.size(), schedule, seconds);
}

}  // namespace app
