// compare_raw -- hand-written plain-MPI baseline for the benchmark comparison suite.
//
// Every workload here is written directly against the MPI C API (and GMP for
// `factorials`) the way an experienced HPC programmer would write it by hand.
// It is written independently of mpiproc on purpose: it shares no code, headers
// or design with the library, so that comparing the two exposes the library's
// overheads instead of hiding them.
//
// Usage: compare_raw <workload> [args]   (run under mpirun; see usage() below)
//
// Output on success (rank 0, stdout; other lines may precede these two):
//   checksum: <text>
//   kernel: <seconds, 6 decimals> s
// kernel is the wall time on rank 0 from a barrier after setup to the arrival of
// the final result on rank 0.  Bad command line: usage on stderr (rank 0 only),
// every rank exits 2.

// Plain C API only: keep the deprecated MPI C++ bindings out (they do not compile
// warning-free under -Wextra -Werror).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#include <gmp.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "hand_written.hpp"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

int g_rank = 0;
int g_size = 1;

}  // namespace

// The usage text of this program (hand_written.hpp's functions print it on bad input).
void baseline::usage(const char* prog, const char* why) {
    if (g_rank != 0) return;
    if (why != nullptr) std::fprintf(stderr, "%s: %s\n", prog, why);
    std::fprintf(stderr,
                 "usage: %s <workload> [args]\n"
                 "  primes N            count/sum primes in [1,N] (1 <= N <= 1e10)\n"
                 "  rangesum N R        sum of [0,N) computed R times (1 <= N <= 2^32, 1 <= R,\n"
                 "                      total must fit in int64)\n"
                 "  factorials K        sum of bit lengths of k! for k in [1,K] (1 <= K <= 1e6)\n"
                 "  counter_lock N      P ranks x N locked read-modify-write increments (1 <= N <= 1e9)\n"
                 "  counter_atomic N    P ranks x N MPI_Fetch_and_op increments (1 <= N <= 1e9)\n"
                 "  queue N             rank 0 streams items 0..N-1 to ranks 1..P-1 (1 <= N <= 1e9)\n"
                 "  pipe_pingpong R     R round trips between ranks 0 and 1 (P >= 2, 1 <= R <= 1e9)\n"
                 "  pipe_bw M [S]       M messages of S bytes rank 0 -> 1 (P >= 2, 1 <= M <= 1e9,\n"
                 "                      1 <= S <= 2^30, default S = 1048576)\n"
                 "  map N               results[i] = i*i gathered in order on rank 0 (1 <= N <= 2^31-1)\n"
                 "numbers: decimal digits, optionally with an exponent (e.g. 1e6, 5e7)\n",
                 prog);
}

namespace {

using baseline::arg_in_range;
using baseline::is_prime;
using baseline::no_extra;
using baseline::report;
using baseline::usage;

// Contiguous block [lo, hi) of n items for rank r of p (first n % p ranks get one more).
void block_of(std::uint64_t n, int r, int p, std::uint64_t& lo, std::uint64_t& hi) {
    const std::uint64_t base = n / static_cast<std::uint64_t>(p);
    const std::uint64_t rem = n % static_cast<std::uint64_t>(p);
    const std::uint64_t ur = static_cast<std::uint64_t>(r);
    lo = ur * base + std::min(ur, rem);
    hi = lo + base + (ur < rem ? 1 : 0);
}

// ----------------------------------------------------------------------------- primes


// Largest n for which the 32-bit loop cannot overflow i*i (65535^2 - 1).
constexpr std::uint64_t kPrime32Max = 0xFFFE0000ull;

void primes_in(std::uint64_t lo, std::uint64_t hi, std::uint64_t& count, std::uint64_t& sum) {
    // [lo, hi] inclusive
    std::uint64_t n = lo;
    for (; n <= hi && n <= kPrime32Max; ++n)
        if (is_prime<std::uint32_t>(static_cast<std::uint32_t>(n))) {
            ++count;
            sum += n;
        }
    for (; n <= hi; ++n)
        if (is_prime<std::uint64_t>(n)) {
            ++count;
            sum += n;
        }
}

int run_primes(int argc, char** argv) {
    std::uint64_t n = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 10000000000ull, n) || !no_extra(argc, argv, 3))
        return kExitUsage;

    constexpr std::uint64_t kBlock = 1000;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    std::uint64_t count = 0, sum = 0;
    const std::uint64_t nblocks = (n + kBlock - 1) / kBlock;
    for (std::uint64_t b = static_cast<std::uint64_t>(g_rank); b < nblocks;
         b += static_cast<std::uint64_t>(g_size)) {
        const std::uint64_t lo = 1 + b * kBlock;
        const std::uint64_t hi = std::min(n, (b + 1) * kBlock);
        primes_in(lo, hi, count, sum);
    }
    std::int64_t local[2] = {static_cast<std::int64_t>(count), static_cast<std::int64_t>(sum)};
    std::int64_t global[2] = {0, 0};
    MPI_Reduce(local, global, 2, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        char cs[64];
        std::snprintf(cs, sizeof cs, "%" PRId64 " %" PRId64, global[0], global[1]);
        report(cs, t1 - t0);
    }
    return 0;
}

// ----------------------------------------------------------------------------- rangesum

int run_rangesum(int argc, char** argv) {
    std::uint64_t n = 0, r = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 4294967296ull, n) ||
        !arg_in_range(argc, argv, 3, "R", 1, 1000000000ull, r) || !no_extra(argc, argv, 4))
        return kExitUsage;
    const std::uint64_t per = n * (n - 1) / 2;  // n <= 2^32: no overflow in 64-bit unsigned
    if (per != 0 && r > static_cast<std::uint64_t>(INT64_MAX) / per) {
        usage(argv[0], "N*(N-1)/2*R does not fit in int64");
        return kExitUsage;
    }

    std::uint64_t ulo = 0, uhi = 0;
    block_of(n, g_rank, g_size, ulo, uhi);
    // Bounds are re-read through volatile every repetition, so the compiler cannot
    // compute the block sum once and reuse it for all R repetitions.
    volatile std::int64_t vlo = static_cast<std::int64_t>(ulo);
    volatile std::int64_t vhi = static_cast<std::int64_t>(uhi);

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    std::int64_t total = 0;
    for (std::uint64_t rep = 0; rep < r; ++rep) {
        const std::int64_t lo = vlo;
        const std::int64_t hi = vhi;
        std::int64_t s = 0;
        for (std::int64_t i = lo; i < hi; ++i) s += i;
        std::int64_t g = 0;
        MPI_Reduce(&s, &g, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        total += g;
    }

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        char cs[32];
        std::snprintf(cs, sizeof cs, "%" PRId64, total);
        report(cs, t1 - t0);
    }
    return 0;
}

// ----------------------------------------------------------------------------- factorials

int run_factorials(int argc, char** argv) {
    std::uint64_t k = 0;
    if (!arg_in_range(argc, argv, 2, "K", 1, 1000000, k) || !no_extra(argc, argv, 3))
        return kExitUsage;

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    mpz_t f;
    mpz_init(f);
    std::int64_t bits = 0;
    // cyclic: k % P == rank; cost grows with k, so this interleaving balances well
    for (std::uint64_t i = static_cast<std::uint64_t>(g_rank); i <= k;
         i += static_cast<std::uint64_t>(g_size)) {
        if (i == 0) continue;
        mpz_fac_ui(f, static_cast<unsigned long>(i));
        bits += static_cast<std::int64_t>(mpz_sizeinbase(f, 2));
    }
    mpz_clear(f);
    std::int64_t total = 0;
    MPI_Reduce(&bits, &total, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        char cs[32];
        std::snprintf(cs, sizeof cs, "%" PRId64, total);
        report(cs, t1 - t0);
    }
    return 0;
}

// ----------------------------------------------------------------------------- counters

int run_counter(int argc, char** argv, bool atomic) {
    std::uint64_t un = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 1000000000ull, un) || !no_extra(argc, argv, 3))
        return kExitUsage;
    const std::int64_t n = static_cast<std::int64_t>(un);

    // Setup: one int64 counter exposed by rank 0.
    std::int64_t* base = nullptr;
    MPI_Win win;
    const MPI_Aint bytes = g_rank == 0 ? static_cast<MPI_Aint>(sizeof(std::int64_t)) : 0;
    MPI_Win_allocate(bytes, static_cast<int>(sizeof(std::int64_t)), MPI_INFO_NULL,
                     MPI_COMM_WORLD, &base, &win);
    if (g_rank == 0) {
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win);
        *base = 0;
        MPI_Win_unlock(0, win);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    std::int64_t result = 0;
    double t0 = 0.0, t1 = 0.0;
    const std::int64_t one = 1;

    if (atomic) {
        MPI_Win_lock_all(0, win);
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        std::int64_t old = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            MPI_Fetch_and_op(&one, &old, MPI_INT64_T, 0, 0, MPI_SUM, win);
            MPI_Win_flush(0, win);
        }
        MPI_Barrier(MPI_COMM_WORLD);  // every increment has completed (flushed)
        if (g_rank == 0) {
            MPI_Fetch_and_op(nullptr, &result, MPI_INT64_T, 0, 0, MPI_NO_OP, win);
            MPI_Win_flush(0, win);
        }
        t1 = MPI_Wtime();
        MPI_Win_unlock_all(win);
    } else {
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        std::int64_t v = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win);
            MPI_Get(&v, 1, MPI_INT64_T, 0, 0, 1, MPI_INT64_T, win);
            MPI_Win_flush(0, win);
            v += 1;
            MPI_Put(&v, 1, MPI_INT64_T, 0, 0, 1, MPI_INT64_T, win);
            MPI_Win_unlock(0, win);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        if (g_rank == 0) {
            MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win);
            MPI_Get(&result, 1, MPI_INT64_T, 0, 0, 1, MPI_INT64_T, win);
            MPI_Win_unlock(0, win);
        }
        t1 = MPI_Wtime();
    }

    MPI_Win_free(&win);
    if (g_rank == 0) {
        char cs[32];
        std::snprintf(cs, sizeof cs, "%" PRId64, result);
        report(cs, t1 - t0);
        if (result != n * g_size) {
            std::fprintf(stderr, "counter mismatch: got %" PRId64 ", expected %" PRId64 "\n",
                         result, n * g_size);
            return kExitFailure;
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------- queue

int run_queue(int argc, char** argv) {
    std::uint64_t un = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 1000000000ull, un) || !no_extra(argc, argv, 3))
        return kExitUsage;
    const std::int64_t n = static_cast<std::int64_t>(un);
    constexpr int kTagItem = 1;
    constexpr int kTagEnd = 2;

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    std::int64_t local[2] = {0, 0};  // count, sum
    if (g_size == 1) {
        // Single process: produce into a queue and consume from it.
        std::deque<std::int64_t> q;
        for (std::int64_t i = 0; i < n; ++i) q.push_back(i);
        while (!q.empty()) {
            local[0] += 1;
            local[1] += q.front();
            q.pop_front();
        }
    } else if (g_rank == 0) {
        const int consumers = g_size - 1;
        int dest = 1;
        for (std::int64_t i = 0; i < n; ++i) {
            MPI_Send(&i, 1, MPI_INT64_T, dest, kTagItem, MPI_COMM_WORLD);
            if (++dest > consumers) dest = 1;
        }
        const std::int64_t end = -1;
        for (int d = 1; d <= consumers; ++d)
            MPI_Send(&end, 1, MPI_INT64_T, d, kTagEnd, MPI_COMM_WORLD);
    } else {
        for (;;) {
            std::int64_t item = 0;
            MPI_Status st;
            MPI_Recv(&item, 1, MPI_INT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            if (st.MPI_TAG == kTagEnd) break;
            local[0] += 1;
            local[1] += item;
        }
    }
    std::int64_t global[2] = {0, 0};
    MPI_Reduce(local, global, 2, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        char cs[64];
        std::snprintf(cs, sizeof cs, "%" PRId64 " %" PRId64, global[0], global[1]);
        report(cs, t1 - t0);
    }
    return 0;
}

// ----------------------------------------------------------------------------- pipes

int run_pingpong(int argc, char** argv) {
    std::uint64_t ur = 0;
    if (!arg_in_range(argc, argv, 2, "R", 1, 1000000000ull, ur) || !no_extra(argc, argv, 3))
        return kExitUsage;
    if (g_size < 2) {
        usage(argv[0], "pipe_pingpong needs at least 2 processes");
        return kExitUsage;
    }
    const std::int64_t r = static_cast<std::int64_t>(ur);
    constexpr int kTag = 7;

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    std::int64_t c = 0;
    if (g_rank == 0) {
        for (std::int64_t i = 0; i < r; ++i) {
            ++c;
            MPI_Send(&c, 1, MPI_INT64_T, 1, kTag, MPI_COMM_WORLD);
            MPI_Recv(&c, 1, MPI_INT64_T, 1, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
    } else if (g_rank == 1) {
        for (std::int64_t i = 0; i < r; ++i) {
            MPI_Recv(&c, 1, MPI_INT64_T, 0, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            ++c;
            MPI_Send(&c, 1, MPI_INT64_T, 0, kTag, MPI_COMM_WORLD);
        }
    }

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        const double secs = t1 - t0;
        std::printf("round trip: %.3f us\n", secs / static_cast<double>(r) * 1e6);
        char cs[32];
        std::snprintf(cs, sizeof cs, "%" PRId64, c);
        report(cs, secs);
    }
    return 0;
}

int run_bw(int argc, char** argv) {
    std::uint64_t um = 0, us = 1048576;
    if (!arg_in_range(argc, argv, 2, "M", 1, 1000000000ull, um)) return kExitUsage;
    if (argc > 3 && !arg_in_range(argc, argv, 3, "S", 1, 1ull << 30, us)) return kExitUsage;
    if (!no_extra(argc, argv, 4)) return kExitUsage;
    if (g_size < 2) {
        usage(argv[0], "pipe_bw needs at least 2 processes");
        return kExitUsage;
    }
    const std::int64_t m = static_cast<std::int64_t>(um);
    const int s = static_cast<int>(us);
    constexpr int kTagData = 11;
    constexpr int kTagAck = 12;

    // Setup: preallocated, touched buffers on both ends.
    std::vector<unsigned char> buf;
    if (g_rank <= 1) buf.assign(static_cast<std::size_t>(s), 0);

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    std::int64_t received = 0;
    if (g_rank == 0) {
        for (std::int64_t i = 0; i < m; ++i) {
            buf[static_cast<std::size_t>(s - 1)] = static_cast<unsigned char>(i & 0xff);
            MPI_Send(buf.data(), s, MPI_BYTE, 1, kTagData, MPI_COMM_WORLD);
        }
        MPI_Recv(&received, 1, MPI_INT64_T, 1, kTagAck, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (g_rank == 1) {
        std::int64_t total = 0;
        bool ok = true;
        for (std::int64_t i = 0; i < m; ++i) {
            MPI_Status st;
            MPI_Recv(buf.data(), s, MPI_BYTE, 0, kTagData, MPI_COMM_WORLD, &st);
            int got = 0;
            MPI_Get_count(&st, MPI_BYTE, &got);
            if (got != s || buf[static_cast<std::size_t>(s - 1)] !=
                                static_cast<unsigned char>(i & 0xff))
                ok = false;
            total += got;
        }
        const std::int64_t ack = ok ? total : -1;
        MPI_Send(&ack, 1, MPI_INT64_T, 0, kTagAck, MPI_COMM_WORLD);
    }

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        const double secs = t1 - t0;
        if (received < 0) {
            std::fprintf(stderr, "pipe_bw: receiver saw a wrong message\n");
            return kExitFailure;
        }
        std::printf("bandwidth: %.3f GiB/s\n",
                    static_cast<double>(received) / secs / (1024.0 * 1024.0 * 1024.0));
        char cs[32];
        std::snprintf(cs, sizeof cs, "%" PRId64, received);
        report(cs, secs);
    }
    return 0;
}

// ----------------------------------------------------------------------------- map

int run_map(int argc, char** argv) {
    std::uint64_t un = 0;
    if (!arg_in_range(argc, argv, 2, "N", 1, 2147483647ull, un) || !no_extra(argc, argv, 3))
        return kExitUsage;

    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();

    std::uint64_t lo = 0, hi = 0;
    block_of(un, g_rank, g_size, lo, hi);
    const std::int64_t l = static_cast<std::int64_t>(lo);
    const std::int64_t h = static_cast<std::int64_t>(hi);

    std::vector<std::int64_t> results;
    if (g_rank == 0) {
        // Root computes its own block straight into the result array (MPI_IN_PLACE).
        results.resize(static_cast<std::size_t>(un));
        std::int64_t* out = results.data();
        for (std::int64_t i = l; i < h; ++i) out[i] = i * i;

        std::vector<int> counts(static_cast<std::size_t>(g_size));
        std::vector<int> displs(static_cast<std::size_t>(g_size));
        for (int r = 0; r < g_size; ++r) {
            std::uint64_t rlo = 0, rhi = 0;
            block_of(un, r, g_size, rlo, rhi);
            counts[static_cast<std::size_t>(r)] = static_cast<int>(rhi - rlo);
            displs[static_cast<std::size_t>(r)] = static_cast<int>(rlo);
        }
        MPI_Gatherv(MPI_IN_PLACE, 0, MPI_INT64_T, out, counts.data(), displs.data(),
                    MPI_INT64_T, 0, MPI_COMM_WORLD);
    } else {
        std::vector<std::int64_t> local(static_cast<std::size_t>(h - l));
        std::int64_t* out = local.data();
        for (std::int64_t i = l; i < h; ++i) out[i - l] = i * i;
        MPI_Gatherv(out, static_cast<int>(h - l), MPI_INT64_T, nullptr, nullptr, nullptr,
                    MPI_INT64_T, 0, MPI_COMM_WORLD);
    }

    const double t1 = MPI_Wtime();
    if (g_rank == 0) {
        std::uint64_t cs = 0;
        for (std::int64_t v : results) cs += static_cast<std::uint64_t>(v);
        char txt[32];
        std::snprintf(txt, sizeof txt, "%" PRIu64, cs);
        report(txt, t1 - t0);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);

    int rc = kExitUsage;
    const char* w = argc > 1 ? argv[1] : nullptr;
    if (w == nullptr) {
        usage(argv[0], "missing workload");
    } else if (std::strcmp(w, "primes") == 0) {
        rc = run_primes(argc, argv);
    } else if (std::strcmp(w, "rangesum") == 0) {
        rc = run_rangesum(argc, argv);
    } else if (std::strcmp(w, "factorials") == 0) {
        rc = run_factorials(argc, argv);
    } else if (std::strcmp(w, "counter_lock") == 0) {
        rc = run_counter(argc, argv, false);
    } else if (std::strcmp(w, "counter_atomic") == 0) {
        rc = run_counter(argc, argv, true);
    } else if (std::strcmp(w, "queue") == 0) {
        rc = run_queue(argc, argv);
    } else if (std::strcmp(w, "pipe_pingpong") == 0) {
        rc = run_pingpong(argc, argv);
    } else if (std::strcmp(w, "pipe_bw") == 0) {
        rc = run_bw(argc, argv);
    } else if (std::strcmp(w, "map") == 0) {
        rc = run_map(argc, argv);
    } else {
        char msg[160];
        std::snprintf(msg, sizeof msg, "unknown workload '%.100s'", w);
        usage(argv[0], msg);
    }

    MPI_Finalize();
    return rc;
}
