"""The seed workloads with Python's stdlib ``multiprocessing``, written as the seeds write them.

A comparison subject for the mpiproc benchmarks, not part of the library. The driver runs it as

    /usr/bin/python3 pool.py --procs P <workload> [args]

with P worker processes (Pool(P) or P Processes; the main process only hands out work and
collects, except in ``queue``, where it is the producer, and the pipe workloads, where it is
one end of the Pipe). On success it prints ``checksum: <text>`` and ``kernel: <s> s`` on stdout
and exits 0; bad input: usage on stderr, exit 2; a workload Python cannot express: exit 3.

The kernel clock (time.perf_counter) starts after the Pool, Manager, Queues and Processes exist
(Processes wait on a Barrier, so their start-up is outside the clock) and stops when the result
is on the main process.

Workloads (seed code kept verbatim where there is any; see each function):
  primes N          Pool(P).map(find_primes_wrapper, ranges) over contiguous ranges of [1, N]
                    (seed 001). Default: P ranges, the seed's structure (Pool(4), 4 ranges);
                    --ranges K splits into K ranges instead. Large n cost more, so the last
                    range is the slowest: by a count of trial divisions at N = 1e6, the seed's
                    split (P ranges) takes 1.24x the ideal time at P = 2, 1.30x at P = 3;
                    8 ranges 1.07x / 1.20x; 32 ranges 1.02x / 1.05x.
  rangesum N R      the sum of [0, N) R times with the seed's for loop (seed 002). P Processes;
                    process i sums its contiguous block i of [0, N) in each of the R
                    repetitions (at R == P the same work per process as the seed's one
                    repetition per Process). The results go to a Manager().list(), the fix of
                    the seed's plain list (seed 000 shows Manager lists).
  factorials K      Pool.map over 1..K of math.factorial(k).bit_length() with Pool.map's default
                    chunksize, as a seed reader writes it (seed 004 names the workload, not its
                    code; the bit length is taken in the worker so the big factorials are not
                    pickled back). The default makes 4 chunks per worker, and the last ones hold
                    the largest k: --chunksize 50 was 13% faster at K = 12000, P = 2.
  counter_lock N    the seed's Value('i') + Lock, each of P Processes adds 1 N times (seed 004;
                    typecode 'q' instead of 'i' so large P*N do not overflow).
  counter_atomic N  not applicable: multiprocessing has no atomic increment (exit 3).
  queue N           main process puts 0..N-1 then one None per consumer into a Queue; P-1
                    consumer Processes get until None and put (count, sum) on a result Queue.
  pipe_pingpong R   duplex Pipe(), one child Process, an int counter incremented each hop,
                    R round trips (P must be 2). Also prints ``round trip: <us> us``.
  pipe_bw M S       M messages of S bytes by send_bytes/recv_bytes; the child checks each
                    length and replies the byte total once (P must be 2). Also prints
                    ``bandwidth: <GiB/s> GiB/s``.
  map N             Pool.map(calculate_square, range(N), chunksize=C) (seed 004);
                    default C = min(4000, ceil(N/P)): fastest of 1000..500000 at N = 1e6,
                    P = 2 (0.25 s vs 0.37 s at 2000/5000, 0.65 s at 10000, 0.8 s at N/P: a
                    chunk whose pickled results pass the 64 KiB pipe buffer stalls).
(Timings: best of 2-3 runs on a shared 2-core VM whose speed varies by up to 1.5x.)
"""

import argparse
import math
import multiprocessing
import sys
import time
from decimal import Decimal, InvalidOperation


# --- seed 001: primes -----------------------------------------------------------------------
def is_prime(n):
    if n == 1:
        return False
    for i in range(2, int(n**0.5)+1):
        if n % i == 0:
            return False
    return True


def find_primes(start, end):
    primes = []
    for n in range(start, end+1):
        if is_prime(n):
            primes.append(n)
    return primes


def find_primes_wrapper(args):
    return find_primes(*args)


# --- seed 002: the sum of a range -----------------------------------------------------------
def work(id, start, end, result):
    total = 0
    for i in range(start, end):
        total += i
    result.append(total)
    return


def rangesum_process(id, start, end, repeat, result, barrier):
    barrier.wait()
    for _ in range(repeat):
        work(id, start, end, result)
    barrier.wait()


# --- seed 004: Pool, Lock, Queue, Pipe ------------------------------------------------------
def factorial_bits(number):
    return math.factorial(number).bit_length()


def calculate_square(number):
    return number * number


def increment_shared_counter(counter, lock, n, barrier):
    barrier.wait()
    for _ in range(n):
        lock.acquire()
        try:
            counter.value += 1
        finally:
            lock.release()
    barrier.wait()


def consumer(queue, results, barrier):
    barrier.wait()
    count = total = 0
    while True:
        item = queue.get()
        if item is None:
            break
        count += 1
        total += item
    results.put((count, total))


def pingpong_child(conn, rounds, barrier):
    barrier.wait()
    for _ in range(rounds):
        counter = conn.recv()
        counter += 1
        conn.send(counter)
    conn.close()


def bandwidth_child(conn, messages, size, barrier):
    barrier.wait()
    total = 0
    for _ in range(messages):
        data = conn.recv_bytes()
        if len(data) != size:
            raise RuntimeError(f"message of {len(data)} bytes, expected {size}")
        total += len(data)
    conn.send(total)
    conn.close()


def noop(x):
    return x


# --- the workloads --------------------------------------------------------------------------
def run_primes(P, a):
    k = a.ranges or P
    n = a.N
    ranges = [(n * i // k + 1, n * (i + 1) // k) for i in range(k)]
    with multiprocessing.Pool(processes=P) as p:
        p.map(noop, range(P), chunksize=1)  # warm-up
        t0 = time.perf_counter()
        results = p.map(find_primes_wrapper, ranges)
        count = sum(len(r) for r in results)
        total = sum(sum(r) for r in results)
        t1 = time.perf_counter()
    return f"{count} {total}", t1 - t0, []


def run_rangesum(P, a):
    n, repeat = a.N, a.R
    with multiprocessing.Manager() as manager:
        result = manager.list()
        barrier = multiprocessing.Barrier(P + 1)
        procs = []
        for i in range(P):
            p = multiprocessing.Process(target=rangesum_process,
                                        args=(i, n * i // P, n * (i + 1) // P, repeat, result, barrier))
            p.start()
            procs.append(p)
        barrier.wait()
        t0 = time.perf_counter()
        barrier.wait()
        total = sum(result)
        t1 = time.perf_counter()
        for p in procs:
            p.join()
    return f"{total}", t1 - t0, []


def run_factorials(P, a):
    with multiprocessing.Pool(processes=P) as p:
        p.map(noop, range(P), chunksize=1)
        t0 = time.perf_counter()
        total = sum(p.map(factorial_bits, range(1, a.K + 1), chunksize=a.chunksize))
        t1 = time.perf_counter()
    return f"{total}", t1 - t0, []


def run_counter_lock(P, a):
    shared_counter = multiprocessing.Value('q', 0)
    lock = multiprocessing.Lock()
    barrier = multiprocessing.Barrier(P + 1)
    processes = []
    for _ in range(P):
        p = multiprocessing.Process(target=increment_shared_counter, args=(shared_counter, lock, a.N, barrier))
        processes.append(p)
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    barrier.wait()
    value = shared_counter.value
    t1 = time.perf_counter()
    for p in processes:
        p.join()
    return f"{value}", t1 - t0, []


def run_queue(P, a):
    consumers = P - 1
    q = multiprocessing.Queue()
    results = multiprocessing.Queue()
    barrier = multiprocessing.Barrier(P)
    procs = [multiprocessing.Process(target=consumer, args=(q, results, barrier)) for _ in range(consumers)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for i in range(a.N):
        q.put(i)
    for _ in range(consumers):
        q.put(None)
    count = total = 0
    for _ in range(consumers):
        c, s = results.get()
        count += c
        total += s
    t1 = time.perf_counter()
    for p in procs:
        p.join()
    return f"{count} {total}", t1 - t0, []


def run_pingpong(P, a):
    rounds = a.R
    conn1, conn2 = multiprocessing.Pipe(duplex=True)
    barrier = multiprocessing.Barrier(2)
    child = multiprocessing.Process(target=pingpong_child, args=(conn2, rounds, barrier))
    child.start()
    barrier.wait()
    t0 = time.perf_counter()
    counter = 0
    for _ in range(rounds):
        counter += 1
        conn1.send(counter)
        counter = conn1.recv()
    t1 = time.perf_counter()
    child.join()
    return f"{counter}", t1 - t0, [f"round trip: {(t1 - t0) / rounds * 1e6:.3f} us"]


def run_bandwidth(P, a):
    messages, size = a.M, a.S
    conn1, conn2 = multiprocessing.Pipe(duplex=True)
    barrier = multiprocessing.Barrier(2)
    child = multiprocessing.Process(target=bandwidth_child, args=(conn2, messages, size, barrier))
    child.start()
    data = bytes(size)
    barrier.wait()
    t0 = time.perf_counter()
    for _ in range(messages):
        conn1.send_bytes(data)
    total = conn1.recv()
    t1 = time.perf_counter()
    child.join()
    return f"{total}", t1 - t0, [f"bandwidth: {total / (t1 - t0) / 2**30:.3f} GiB/s"]


MAP_CHUNK = 4000  # a chunk's pickled results stay under the 64 KiB of a Linux pipe buffer


def run_map(P, a):
    chunksize = a.chunksize or max(1, min(MAP_CHUNK, -(-a.N // P)))
    with multiprocessing.Pool(processes=P) as pool:
        pool.map(noop, range(P), chunksize=1)
        t0 = time.perf_counter()
        results = pool.map(calculate_square, range(a.N), chunksize=chunksize)
        t1 = time.perf_counter()
    return f"{sum(results) % 2**64}", t1 - t0, []


def run_counter_atomic(P, a):
    print("counter_atomic: not applicable: multiprocessing has no atomic increment on a shared Value",
          file=sys.stderr)
    sys.exit(3)


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
        prog="pool.py", description="The seed workloads with Python multiprocessing (see the docstring).")
    parser.add_argument("--procs", type=whole(1), required=True, help="worker processes P")
    sub = parser.add_subparsers(dest="workload", required=True, metavar="workload")
    w = sub.add_parser("primes", help="count and sum of primes in [1, N]")
    w.add_argument("N", type=whole(1))
    w.add_argument("--ranges", type=whole(1), default=None, help="contiguous ranges (default P, as the seed)")
    w = sub.add_parser("rangesum", help="sum of [0, N), R times")
    w.add_argument("N", type=whole(0))
    w.add_argument("R", type=whole(1))
    w = sub.add_parser("factorials", help="sum of bit lengths of k! for k in 1..K")
    w.add_argument("K", type=whole(1))
    w.add_argument("--chunksize", type=whole(1), default=None, help="Pool.map chunksize (default: Pool's)")
    for name in ("counter_lock", "counter_atomic"):
        w = sub.add_parser(name, help="P workers add 1 N times to one shared counter")
        w.add_argument("N", type=whole(1))
    w = sub.add_parser("queue", help="1 producer, P-1 consumers, N items (P >= 2)")
    w.add_argument("N", type=whole(0))
    w = sub.add_parser("pipe_pingpong", help="R round trips of a counter over a Pipe (P = 2)")
    w.add_argument("R", type=whole(1))
    w = sub.add_parser("pipe_bw", help="M messages of S bytes over a Pipe (P = 2)")
    w.add_argument("M", type=whole(1))
    w.add_argument("S", type=whole(1))
    w = sub.add_parser("map", help="[i*i for i in range(N)] in parallel, in order")
    w.add_argument("N", type=whole(0))
    w.add_argument("--chunksize", type=whole(1), default=None, help="Pool.map chunksize (default min(4000, ceil(N/P)))")
    w = sub.add_parser("tasks", help="N empty tasks through apply_async, then every get()")
    w.add_argument("N", type=whole(1))
    w = sub.add_parser("task_rtt", help="R empty tasks one at a time through apply()")
    w.add_argument("R", type=whole(1))
    a = parser.parse_args(argv)
    if a.workload == "queue" and a.procs < 2:
        parser.error("queue needs --procs >= 2 (1 producer, P-1 consumers)")
    if a.workload in ("pipe_pingpong", "pipe_bw") and a.procs != 2:
        parser.error(f"{a.workload} needs --procs 2 (the two ends of one Pipe)")
    return a


def identity(x):
    return x


def run_tasks(P, a):
    """N empty tasks through Pool.apply_async, then every AsyncResult.get()."""
    with multiprocessing.Pool(processes=P) as pool:
        pool.map(noop, range(P), chunksize=1)
        t0 = time.perf_counter()
        results = [pool.apply_async(identity, (x,)) for x in range(a.N)]
        total = sum(r.get() for r in results)
        t1 = time.perf_counter()
    return f"{total}", t1 - t0, [f"tasks/s: {a.N / (t1 - t0):.0f}"]


def run_task_rtt(P, a):
    """R empty tasks one at a time through Pool.apply (a task's round trip)."""
    with multiprocessing.Pool(processes=P) as pool:
        pool.map(noop, range(P), chunksize=1)
        t0 = time.perf_counter()
        total = sum(pool.apply(identity, (x,)) for x in range(a.R))
        t1 = time.perf_counter()
    return f"{total}", t1 - t0, [f"round trip: {(t1 - t0) / a.R * 1e6:.1f} us"]


RUNS = {
    "primes": run_primes, "rangesum": run_rangesum, "factorials": run_factorials,
    "counter_lock": run_counter_lock, "counter_atomic": run_counter_atomic, "queue": run_queue,
    "pipe_pingpong": run_pingpong, "pipe_bw": run_bandwidth, "map": run_map,
    "tasks": run_tasks, "task_rtt": run_task_rtt,
}


def main():
    a = parse_args(sys.argv[1:])
    checksum, seconds, extra = RUNS[a.workload](a.procs, a)
    for line in extra:
        print(line)
    print(f"checksum: {checksum}")
    print(f"kernel: {seconds:.6f} s")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
