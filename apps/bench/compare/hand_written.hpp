#pragma once

// What the comparison suite's two hand-written baselines share (compare_raw, compare_seq): their
// strict command-line numbers, their two output lines, and the seed's trial division. Written
// apart from mpiproc, like the programs themselves.

#include <cstdint>
#include <cstdio>

namespace baseline {

/// Prints why the command line is wrong and the program's usage (each program has its own).
void usage(const char* prog, const char* why);

// Strict unsigned parse: digits, optionally followed by [eE]digits. No sign, no
// fraction, no trailing garbage, no overflow.
inline bool parse_u64(const char* s, std::uint64_t& out) {
    if (s == nullptr || *s == '\0') return false;
    std::uint64_t mant = 0;
    const char* p = s;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; ++p) {
        const std::uint64_t d = static_cast<std::uint64_t>(*p - '0');
        if (mant > (UINT64_MAX - d) / 10) return false;
        mant = mant * 10 + d;
    }
    if (*p == 'e' || *p == 'E') {
        ++p;
        if (*p < '0' || *p > '9') return false;
        unsigned exp = 0;
        for (; *p >= '0' && *p <= '9'; ++p) {
            exp = exp * 10 + static_cast<unsigned>(*p - '0');
            if (exp > 30) return false;
        }
        for (unsigned i = 0; i < exp; ++i) {
            if (mant > UINT64_MAX / 10) return false;
            mant *= 10;
        }
    }
    if (*p != '\0') return false;
    out = mant;
    return true;
}

// Parses argv[idx] into [lo, hi]; reports a usage error on failure.
inline bool arg_in_range(int argc, char** argv, int idx, const char* name, std::uint64_t lo,
                  std::uint64_t hi, std::uint64_t& out) {
    char msg[160];
    if (idx >= argc) {
        std::snprintf(msg, sizeof msg, "missing argument %s", name);
        usage(argv[0], msg);
        return false;
    }
    if (!parse_u64(argv[idx], out)) {
        std::snprintf(msg, sizeof msg, "argument %s is not a non-negative integer: '%s'", name,
                      argv[idx]);
        usage(argv[0], msg);
        return false;
    }
    if (out < lo || out > hi) {
        std::snprintf(msg, sizeof msg, "argument %s out of range: %s", name, argv[idx]);
        usage(argv[0], msg);
        return false;
    }
    return true;
}

inline bool no_extra(int argc, char** argv, int expected) {
    if (argc > expected) {
        usage(argv[0], "too many arguments");
        return false;
    }
    return true;
}

inline void report(const char* checksum, double seconds) {
    std::printf("checksum: %s\nkernel: %.6f s\n", checksum, seconds);
    std::fflush(stdout);
}

// Trial division exactly as the reference: every i in [2, floor(sqrt n)], i*i <= n.
template <class U>
inline bool is_prime(U n) {
    if (n < 2) return false;
    for (U i = 2; i * i <= n; ++i)
        if (n % i == 0) return false;
    return true;
}

}  // namespace baseline
