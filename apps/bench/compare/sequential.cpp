// compare_seq -- hand-written single-core C++ baseline for the benchmark comparison
// suite: the same workloads as compare_raw, on one core, with no MPI at all.
//
// It is written independently of mpiproc on purpose: it shares no code, headers or
// design with the library, so that it shows what the work costs with no parallel
// runtime in the way.
//
// Usage: compare_seq <workload> [args]   (see usage() below)
//
// Output on success (stdout; other lines may precede these two):
//   checksum: <text>
//   kernel: <seconds, 6 decimals> s
// kernel is the steady_clock wall time of the work only.
// Exit codes: 0 success, 2 bad command line (usage on stderr), 3 workload not
// applicable to a single process (pipe_pingpong, pipe_bw).

#include <gmp.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "hand_written.hpp"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitNotApplicable = 3;
constexpr int kExitFailure = 1;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

// The usage text of this program (hand_written.hpp's functions print it on bad input).
void baseline::usage(const char* prog, const char* why) {
    if (why != nullptr) std::fprintf(stderr, "%s: %s\n", prog, why);
    std::fprintf(stderr,
                 "usage: %s <workload> [args]\n"
                 "  primes N              count/sum primes in [1,N] (1 <= N <= 1e10)\n"
                 "  rangesum N R          sum of [0,N) computed R times (1 <= N <= 2^32, 1 <= R,\n"
                 "                        total must fit in int64)\n"
                 "  factorials K          sum of bit lengths of k! for k in [1,K] (1 <= K <= 1e6)\n"
                 "  counter_lock N [P]    P*N mutex-protected increments (1 <= N <= 1e9,\n"
                 "                        1 <= P <= 1024, default P = 1)\n"
                 "  counter_atomic N [P]  P*N atomic fetch_add increments (same ranges)\n"
                 "  queue N               push items 0..N-1 into a deque, pop them (1 <= N <= 1e9)\n"
                 "  map N                 results[i] = i*i for i in [0,N) (1 <= N <= 2^31-1)\n"
                 "  pipe_pingpong, pipe_bw: not applicable to one process (exit 3)\n"
                 "numbers: decimal digits, optionally with an exponent (e.g. 1e6, 5e7)\n",
                 prog);
}

namespace {

using baseline::arg_in_range;
using baseline::is_prime;
using baseline::no_extra;
using baseline::report;
using baseline::usage;

// ----------------------------------------------------------------------------- primes


// Largest n for which the 32-bit loop cannot overflow i*i (65535^2 - 1).
constexpr std::uint64_t kPrime32Max = 0xFFFE0000ull;

int run_primes(int argc, char** argv) {
    std::uint64_t n = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 10000000000ull, n) || !no_extra(argc, argv, 3))
        return kExitUsage;

    const auto t0 = Clock::now();
    std::uint64_t count = 0, sum = 0;
    std::uint64_t i = 1;
    for (; i <= n && i <= kPrime32Max; ++i)
        if (is_prime<std::uint32_t>(static_cast<std::uint32_t>(i))) {
            ++count;
            sum += i;
        }
    for (; i <= n; ++i)
        if (is_prime<std::uint64_t>(i)) {
            ++count;
            sum += i;
        }
    const double secs = seconds_since(t0);

    char cs[64];
    std::snprintf(cs, sizeof cs, "%" PRIu64 " %" PRIu64, count, sum);
    report(cs, secs);
    return 0;
}

// ----------------------------------------------------------------------------- rangesum

int run_rangesum(int argc, char** argv) {
    std::uint64_t n = 0, r = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 4294967296ull, n) ||
        !arg_in_range(argc, argv, 3, "R", 1, 1000000000ull, r) || !no_extra(argc, argv, 4))
        return kExitUsage;
    const std::uint64_t per = n * (n - 1) / 2;
    if (per != 0 && r > static_cast<std::uint64_t>(INT64_MAX) / per) {
        usage(argv[0], "N*(N-1)/2*R does not fit in int64");
        return kExitUsage;
    }

    // Bounds are re-read through volatile every repetition, so the compiler cannot
    // compute the sum once and reuse it for all R repetitions.
    volatile std::int64_t vlo = 0;
    volatile std::int64_t vhi = static_cast<std::int64_t>(n);

    const auto t0 = Clock::now();
    std::int64_t total = 0;
    for (std::uint64_t rep = 0; rep < r; ++rep) {
        const std::int64_t lo = vlo;
        const std::int64_t hi = vhi;
        std::int64_t s = 0;
        for (std::int64_t i = lo; i < hi; ++i) s += i;
        total += s;
    }
    const double secs = seconds_since(t0);

    char cs[32];
    std::snprintf(cs, sizeof cs, "%" PRId64, total);
    report(cs, secs);
    return 0;
}

// ----------------------------------------------------------------------------- factorials

int run_factorials(int argc, char** argv) {
    std::uint64_t k = 0;
    if (!arg_in_range(argc, argv, 2, "K", 1, 1000000, k) || !no_extra(argc, argv, 3))
        return kExitUsage;

    const auto t0 = Clock::now();
    mpz_t f;
    mpz_init(f);
    std::uint64_t bits = 0;
    for (std::uint64_t i = 1; i <= k; ++i) {
        mpz_fac_ui(f, static_cast<unsigned long>(i));
        bits += static_cast<std::uint64_t>(mpz_sizeinbase(f, 2));
    }
    mpz_clear(f);
    const double secs = seconds_since(t0);

    char cs[32];
    std::snprintf(cs, sizeof cs, "%" PRIu64, bits);
    report(cs, secs);
    return 0;
}

// ----------------------------------------------------------------------------- counters

// Global, so the compiler must load/store it around the opaque mutex calls.
long long g_locked_counter = 0;

int run_counter(int argc, char** argv, bool atomic) {
    std::uint64_t n = 0, p = 1;
    if (!arg_in_range(argc, argv, 2, "N", 1, 1000000000ull, n)) return kExitUsage;
    if (argc > 3 && !arg_in_range(argc, argv, 3, "P", 1, 1024, p)) return kExitUsage;
    if (!no_extra(argc, argv, 4)) return kExitUsage;
    const long long total = static_cast<long long>(n * p);

    long long result = 0;
    double secs = 0.0;
    if (atomic) {
        std::atomic<long long> counter{0};
        const auto t0 = Clock::now();
        for (long long i = 0; i < total; ++i) counter.fetch_add(1);
        result = counter.load();
        secs = seconds_since(t0);
    } else {
        std::mutex m;
        g_locked_counter = 0;
        const auto t0 = Clock::now();
        for (long long i = 0; i < total; ++i) {
            m.lock();
            ++g_locked_counter;
            m.unlock();
        }
        m.lock();
        result = g_locked_counter;
        m.unlock();
        secs = seconds_since(t0);
    }

    char cs[32];
    std::snprintf(cs, sizeof cs, "%lld", result);
    report(cs, secs);
    if (result != total) {
        std::fprintf(stderr, "counter mismatch: got %lld, expected %lld\n", result, total);
        return kExitFailure;
    }
    return 0;
}

// ----------------------------------------------------------------------------- queue

int run_queue(int argc, char** argv) {
    std::uint64_t un = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 1000000000ull, un) || !no_extra(argc, argv, 3))
        return kExitUsage;
    const std::int64_t n = static_cast<std::int64_t>(un);

    const auto t0 = Clock::now();
    std::deque<std::int64_t> q;
    for (std::int64_t i = 0; i < n; ++i) q.push_back(i);
    std::int64_t count = 0, sum = 0;
    while (!q.empty()) {
        ++count;
        sum += q.front();
        q.pop_front();
    }
    const double secs = seconds_since(t0);

    char cs[64];
    std::snprintf(cs, sizeof cs, "%" PRId64 " %" PRId64, count, sum);
    report(cs, secs);
    return 0;
}

// ----------------------------------------------------------------------------- map

int run_map(int argc, char** argv) {
    std::uint64_t un = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 2147483647ull, un) || !no_extra(argc, argv, 3))
        return kExitUsage;
    const std::int64_t n = static_cast<std::int64_t>(un);

    const auto t0 = Clock::now();
    std::vector<std::int64_t> results(static_cast<std::size_t>(n));
    std::int64_t* out = results.data();
    for (std::int64_t i = 0; i < n; ++i) out[i] = i * i;
    const double secs = seconds_since(t0);

    std::uint64_t cs = 0;
    for (std::int64_t v : results) cs += static_cast<std::uint64_t>(v);
    char txt[32];
    std::snprintf(txt, sizeof txt, "%" PRIu64, cs);
    report(txt, secs);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const char* w = argc > 1 ? argv[1] : nullptr;
    if (w == nullptr) {
        usage(argv[0], "missing workload");
        return kExitUsage;
    }
    if (std::strcmp(w, "primes") == 0) return run_primes(argc, argv);
    if (std::strcmp(w, "rangesum") == 0) return run_rangesum(argc, argv);
    if (std::strcmp(w, "factorials") == 0) return run_factorials(argc, argv);
    if (std::strcmp(w, "counter_lock") == 0) return run_counter(argc, argv, false);
    if (std::strcmp(w, "counter_atomic") == 0) return run_counter(argc, argv, true);
    if (std::strcmp(w, "queue") == 0) return run_queue(argc, argv);
    if (std::strcmp(w, "map") == 0) return run_map(argc, argv);
    if (std::strcmp(w, "pipe_pingpong") == 0 || std::strcmp(w, "pipe_bw") == 0) {
        std::fprintf(stderr, "%s: %s: not applicable to a single process\n", argv[0], w);
        return kExitNotApplicable;
    }
    char msg[160];
    std::snprintf(msg, sizeof msg, "unknown workload '%.100s'", w);
    usage(argv[0], msg);
    return kExitUsage;
}
