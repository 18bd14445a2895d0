"""The task-pool seed workloads with mpi4py.futures (MPIPoolExecutor).

A comparison subject for the mpiproc benchmarks, not part of the library. The driver runs it,
for P workers, as

    mpirun -np P+1 /usr/bin/python3 -m mpi4py.futures mpi4py_futures.py <workload> [args]

(add --allow-run-as-root / --oversubscribe as the machine needs). Rank 0 runs this script as the
manager and submits tasks; ranks 1..P are the workers (mpi4py.futures' static pool of
COMM_WORLD; no MPI_Comm_spawn). This is the launch form that works reliably with Open MPI 4.1.4
(tested at P = 1, 2, 3). The spawning form ``mpirun -np 1 /usr/bin/python3 mpi4py_futures.py
--workers P ...`` (MPIPoolExecutor(max_workers=P) calls MPI_Comm_spawn) happened to work on the
machine this was written on too, but spawning is often unavailable under batch systems; the
driver uses the ``-m mpi4py.futures`` form.

Rank 0 prints ``checksum: <text>`` and ``kernel: <s> s`` on stdout and exits 0. Bad input: usage
on stderr, exit 2; a workload that does not fit a task pool (counter_lock, counter_atomic,
queue, pipe_pingpong, pipe_bw): "not applicable" on stderr, exit 3 (mpirun adds its banner about
a nonzero exit code; the script avoids the MPI_Abort that mpi4py.futures would make of it).

The kernel clock (time.perf_counter on rank 0) starts after the executor exists and
executor.bootup(wait=True) has connected all workers, and stops when the result is on rank 0.

Workloads (is_prime and the summing loop are the seeds' code):
  primes N        blocks of 1000 numbers of [1, N], executor.map(count_block, ...,
                  chunksize=C), each block returning (count, sum); default C = ceil(blocks /
                  (16 P)), 16 tasks per worker (at N = 1e6, P = 2: C = 32, 1.12 s; C = 8: 1.24 s,
                  C = 1: 1.95 s, the manager's polling costs up to 1 ms a task).
  rangesum N R    each of the R repetitions of the sum of [0, N) split into P contiguous blocks;
                  R*P executor.submit(work, lo, hi) with the seed's for loop; the results summed.
  factorials K    executor.map(factorial_bits, range(1, K+1), chunksize=C) with
                  math.factorial(k).bit_length() (default C = 50; at K = 12000, P = 2: 50 and
                  200 tie at 4.9 s, 10: 5.5 s, 750: 5.1 s).
  map N           results = list(executor.map(calculate_square, range(N), chunksize=C))
                  (the seed's calculate_square); default C = min(5000, ceil(N/P)): fastest of 1000..500000
                  at N = 1e6, P = 2 (0.50 s; 0.66 s at 2000, 0.61 s at 10000, 1.28 s at N/P).
(Timings: best of 2-3 runs on a shared 2-core VM whose speed varies by up to 1.5x.)
"""

import argparse
import atexit
import math
import os
import sys
import time
from decimal import Decimal, InvalidOperation

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor
from mpi4py.futures import _lib  # only to tell the -m mpi4py.futures launch from the others


# --- the seeds' code and the tasks (module level: the workers look them up by name) ---------
def is_prime(n):
    if n == 1:
        return False
    for i in range(2, int(n**0.5)+1):
        if n % i == 0:
            return False
    return True


def count_block(start, end):
    """Count and sum of the primes in [start, end]."""
    count = total = 0
    for n in range(start, end+1):
        if is_prime(n):
            count += 1
            total += n
    return count, total


def work(start, end):
    total = 0
    for i in range(start, end):
        total += i
    return total


def factorial_bits(number):
    return math.factorial(number).bit_length()


def calculate_square(number):
    return number * number


# --- the workloads: each returns (checksum, seconds, extra lines) ---------------------------
def run_primes(ex, P, a):
    n, block = a.N, a.block
    starts = range(1, n + 1, block)
    ends = [min(s + block - 1, n) for s in starts]
    t0 = time.perf_counter()
    count = total = 0
    chunksize = a.chunksize or max(1, -(-len(starts) // (16 * P)))
    for c, s in ex.map(count_block, starts, ends, chunksize=chunksize):
        count += c
        total += s
    t1 = time.perf_counter()
    return f"{count} {total}", t1 - t0, []


def run_rangesum(ex, P, a):
    n, repeat = a.N, a.R
    t0 = time.perf_counter()
    futures = [ex.submit(work, n * i // P, n * (i + 1) // P) for _ in range(repeat) for i in range(P)]
    total = sum(f.result() for f in futures)
    t1 = time.perf_counter()
    return f"{total}", t1 - t0, []


def run_factorials(ex, P, a):
    t0 = time.perf_counter()
    total = sum(ex.map(factorial_bits, range(1, a.K + 1), chunksize=a.chunksize))
    t1 = time.perf_counter()
    return f"{total}", t1 - t0, []


def run_map(ex, P, a):
    chunksize = a.chunksize or max(1, min(5000, -(-a.N // P)))
    t0 = time.perf_counter()
    results = list(ex.map(calculate_square, range(a.N), chunksize=chunksize))
    t1 = time.perf_counter()
    return f"{sum(results) % 2**64}", t1 - t0, []


def identity(x):
    return x


def run_tasks(ex, P, a):
    """N empty tasks, each submitted and its result taken (the task pool's throughput)."""
    t0 = time.perf_counter()
    futures = [ex.submit(identity, x) for x in range(a.N)]
    total = sum(f.result() for f in futures)
    t1 = time.perf_counter()
    return f"{total}", t1 - t0, [f"tasks/s: {a.N / (t1 - t0):.0f}"]


def run_task_rtt(ex, P, a):
    """R empty tasks one at a time: submit, then wait for the result (a task's round trip)."""
    t0 = time.perf_counter()
    total = sum(ex.submit(identity, x).result() for x in range(a.R))
    t1 = time.perf_counter()
    return f"{total}", t1 - t0, [f"round trip: {(t1 - t0) / a.R * 1e6:.1f} us"]


RUNS = {"primes": run_primes, "rangesum": run_rangesum, "factorials": run_factorials, "map": run_map,
        "tasks": run_tasks, "task_rtt": run_task_rtt}
NOT_APPLICABLE = {
    "counter_lock": "a task pool has no shared counter or lock",
    "counter_atomic": "a task pool has no shared counter",
    "queue": "a task pool has no producer/consumer queue between the workers",
    "pipe_pingpong": "a task pool has no pipe between two processes",
    "pipe_bw": "a task pool has no pipe between two processes",
}


# --- command line ---------------------------------------------------------------------------
def whole(low):
    def parse(text):
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
        if not d.is_finite() or d != d.to_integral_value() or d < low:
            raise argparse.ArgumentTypeError(f"need a whole number >= {low}: {text!r}")
        return int(d)
    return parse


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="mpi4py_futures.py",
        description="The task-pool seed workloads with mpi4py.futures (see the docstring).",
        epilog="Run as: mpirun -np P+1 /usr/bin/python3 -m mpi4py.futures mpi4py_futures.py <workload> [args]")
    parser.add_argument("--workers", type=whole(1), default=None,
                        help="only when started without -m mpi4py.futures on one rank: spawn this many workers")
    sub = parser.add_subparsers(dest="workload", required=True, metavar="workload")
    w = sub.add_parser("primes", help="count and sum of primes in [1, N]")
    w.add_argument("N", type=whole(1))
    w.add_argument("--block", type=whole(1), default=1000, help="numbers per task (default 1000)")
    w.add_argument("--chunksize", type=whole(1), default=None, help="blocks per task (default: 16 tasks per worker)")
    w = sub.add_parser("rangesum", help="sum of [0, N), R times")
    w.add_argument("N", type=whole(0))
    w.add_argument("R", type=whole(1))
    w = sub.add_parser("factorials", help="sum of bit lengths of k! for k in 1..K")
    w.add_argument("K", type=whole(1))
    w.add_argument("--chunksize", type=whole(1), default=50, help="tasks per message (default 50)")
    w = sub.add_parser("map", help="[i*i for i in range(N)] in parallel, in order")
    w.add_argument("N", type=whole(0))
    w.add_argument("--chunksize", type=whole(1), default=None, help="tasks per message (default min(5000, ceil(N/P)))")
    w = sub.add_parser("tasks", help="N empty tasks submitted, then every result taken")
    w.add_argument("N", type=whole(1))
    w = sub.add_parser("task_rtt", help="R empty tasks, each submitted and its result taken before the next")
    w.add_argument("R", type=whole(1))
    for name in NOT_APPLICABLE:
        w = sub.add_parser(name, help="not applicable (exit 3)")
        w.add_argument("args", nargs="*")
    return parser, parser.parse_args(argv)


def finalize_and_exit(code):
    sys.stdout.flush()
    sys.stderr.flush()
    if not MPI.Is_finalized():
        MPI.Finalize()
    os._exit(code)


def main():
    try:
        return run()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if code == 0 or _lib.SharedPool is None:
            raise
        # Under -m mpi4py.futures a nonzero SystemExit becomes MPI_Abort (a noisy abort):
        # end normally instead, so the workers are released, and set the status at exit.
        atexit.register(finalize_and_exit, code)
        return 0


def run():
    parser, a = parse_args(sys.argv[1:])
    world = MPI.COMM_WORLD.Get_size()
    shared = _lib.SharedPool is not None  # started by python -m mpi4py.futures
    if world > 1 and not shared:  # every rank runs this script: the wrong launch form
        if MPI.COMM_WORLD.Get_rank() != 0:
            sys.exit(2)
        parser.error("with more than one rank, run as python3 -m mpi4py.futures mpi4py_futures.py ...")
    if shared and world < 2:
        parser.error("needs at least one worker: mpirun -np P+1 with P >= 1")
    if a.workload in NOT_APPLICABLE:
        print(f"{a.workload}: not applicable: {NOT_APPLICABLE[a.workload]}", file=sys.stderr)
        sys.exit(3)
    if shared:  # ranks 1..size-1 are the workers
        P = world - 1
        executor = MPIPoolExecutor()
    else:  # spawning form
        P = a.workers or 1
        executor = MPIPoolExecutor(max_workers=P)
    with executor:
        executor.bootup(wait=True)
        checksum, seconds, extra = RUNS[a.workload](executor, P, a)
    for line in extra:
        print(line)
    print(f"checksum: {checksum}")
    print(f"kernel: {seconds:.6f} s")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
