"""The seed workloads with plain mpi4py (point-to-point, collectives, one-sided windows).

A comparison subject for the mpiproc benchmarks, not part of the library: what a skilled
mpi4py user writes by hand. The driver runs it as

    mpirun -np P /usr/bin/python3 mpi4py_plain.py <workload> [args]

(add --allow-run-as-root / --oversubscribe as the machine needs). Every rank computes; rank 0
prints ``checksum: <text>`` and ``kernel: <s> s`` on stdout and all ranks exit 0. Bad input:
usage on stderr (rank 0 only), every rank exits 2.

The kernel clock (time.perf_counter on rank 0) starts after MPI init, a window's creation and a
Barrier, and stops when the result is on rank 0.

Workloads (is_prime and the summing loop are the seeds' code):
  primes N          blocks of 1000 numbers of [1, N] dealt cyclically over the ranks, local
                    count and sum, comm.reduce.
  rangesum N R      each of the R repetitions of the sum of [0, N) split into P contiguous
                    blocks, one per rank, summed with the seed's for loop; comm.reduce per
                    repetition.
  factorials K      k = 1..K dealt cyclically over the ranks, math.factorial(k).bit_length(),
                    comm.reduce.
  counter_atomic N  MPI.Win.Allocate (one int64 on rank 0), Lock_all, then per increment
                    Fetch_and_op(SUM) + Flush; every rank adds 1 N times.
  counter_lock N    same window; per increment Lock(0, EXCLUSIVE), Get, Flush, +1, Put, Unlock.
  queue N           rank 0 sends 0..N-1 round-robin to ranks 1..P-1 with comm.send, then one
                    None to each; the consumers recv until None; comm.reduce of count and sum
                    (P >= 2).
  pipe_pingpong R   ranks 0 and 1 exchange an int counter (comm.send/recv), incremented each hop,
                    R round trips; other ranks idle (P >= 2). Also prints ``round trip: <us> us``.
  pipe_bw M S       rank 0 sends M messages of S bytes (bytearray, comm.Send) to rank 1, which
                    Recvs into its own bytearray, checks each length and replies the total once
                    (P >= 2). Also prints ``bandwidth: <GiB/s> GiB/s``.
  map N             each rank computes [i*i for i in its contiguous block of range(N)],
                    comm.gather to rank 0, concatenated in order.
"""

import argparse
import math
import sys
import time
from array import array
from decimal import Decimal, InvalidOperation

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
size = comm.Get_size()


# --- the seeds' code ------------------------------------------------------------------------
def is_prime(n):
    if n == 1:
        return False
    for i in range(2, int(n**0.5)+1):
        if n % i == 0:
            return False
    return True


def work(start, end):
    total = 0
    for i in range(start, end):
        total += i
    return total


# --- the workloads: each returns (checksum, seconds, extra lines) on rank 0 -----------------
def start_clock():
    comm.Barrier()
    return time.perf_counter()


def run_primes(a):
    n, block = a.N, 1000
    t0 = start_clock()
    count = total = 0
    for lo in range(1 + rank * block, n + 1, size * block):
        for k in range(lo, min(lo + block, n + 1)):
            if is_prime(k):
                count += 1
                total += k
    count = comm.reduce(count, op=MPI.SUM, root=0)
    total = comm.reduce(total, op=MPI.SUM, root=0)
    return f"{count} {total}", time.perf_counter() - t0, []


def run_rangesum(a):
    n, repeat = a.N, a.R
    lo, hi = n * rank // size, n * (rank + 1) // size
    t0 = start_clock()
    result = []
    for _ in range(repeat):
        result.append(comm.reduce(work(lo, hi), op=MPI.SUM, root=0))
    total = sum(result) if rank == 0 else None
    return f"{total}", time.perf_counter() - t0, []


def run_factorials(a):
    t0 = start_clock()
    total = 0
    for k in range(1 + rank, a.K + 1, size):
        total += math.factorial(k).bit_length()
    total = comm.reduce(total, op=MPI.SUM, root=0)
    return f"{total}", time.perf_counter() - t0, []


def make_counter_window():
    win = MPI.Win.Allocate(8 if rank == 0 else 0, 8, comm=comm)
    if rank == 0:
        win.Lock(0, MPI.LOCK_EXCLUSIVE)
        win.Put(array('q', [0]), 0)
        win.Unlock(0)
    comm.Barrier()
    return win


def read_counter(win):
    value = array('q', [0])
    if rank == 0:
        win.Lock(0, MPI.LOCK_SHARED)
        win.Get(value, 0)
        win.Unlock(0)
    return value[0]


def run_counter_atomic(a):
    win = make_counter_window()
    one, old = array('q', [1]), array('q', [0])
    t0 = start_clock()
    win.Lock_all()
    for _ in range(a.N):
        win.Fetch_and_op(one, old, 0, 0, MPI.SUM)
        win.Flush(0)
    win.Unlock_all()
    comm.Barrier()
    value = read_counter(win)
    seconds = time.perf_counter() - t0
    win.Free()
    return f"{value}", seconds, []


def run_counter_lock(a):
    win = make_counter_window()
    buf = array('q', [0])
    t0 = start_clock()
    for _ in range(a.N):
        win.Lock(0, MPI.LOCK_EXCLUSIVE)
        win.Get(buf, 0)
        win.Flush(0)
        buf[0] += 1
        win.Put(buf, 0)
        win.Unlock(0)
    comm.Barrier()
    value = read_counter(win)
    seconds = time.perf_counter() - t0
    win.Free()
    return f"{value}", seconds, []


def run_queue(a):
    consumers = size - 1
    t0 = start_clock()
    count = total = 0
    if rank == 0:
        for i in range(a.N):
            comm.send(i, dest=1 + i % consumers)
        for c in range(consumers):
            comm.send(None, dest=1 + c)
    else:
        while True:
            item = comm.recv(source=0)
            if item is None:
                break
            count += 1
            total += item
    count = comm.reduce(count, op=MPI.SUM, root=0)
    total = comm.reduce(total, op=MPI.SUM, root=0)
    return f"{count} {total}", time.perf_counter() - t0, []


def run_pingpong(a):
    rounds = a.R
    t0 = start_clock()
    counter = 0
    if rank == 0:
        for _ in range(rounds):
            counter += 1
            comm.send(counter, dest=1)
            counter = comm.recv(source=1)
    elif rank == 1:
        for _ in range(rounds):
            counter = comm.recv(source=0)
            counter += 1
            comm.send(counter, dest=0)
    seconds = time.perf_counter() - t0
    return f"{counter}", seconds, [f"round trip: {seconds / rounds * 1e6:.3f} us"]


def run_bandwidth(a):
    messages, nbytes = a.M, a.S
    buf = bytearray(nbytes)
    t0 = start_clock()
    total = 0
    if rank == 0:
        for _ in range(messages):
            comm.Send([buf, MPI.BYTE], dest=1)
        total = comm.recv(source=1)
    elif rank == 1:
        status = MPI.Status()
        for _ in range(messages):
            comm.Recv([buf, MPI.BYTE], source=0, status=status)
            got = status.Get_count(MPI.BYTE)
            if got != nbytes:
                raise RuntimeError(f"message of {got} bytes, expected {nbytes}")
            total += got
        comm.send(total, dest=0)
    seconds = time.perf_counter() - t0
    return f"{total}", seconds, [f"bandwidth: {total / seconds / 2**30:.3f} GiB/s"]


def run_map(a):
    n = a.N
    lo, hi = n * rank // size, n * (rank + 1) // size
    t0 = start_clock()
    part = [i * i for i in range(lo, hi)]
    parts = comm.gather(part, root=0)
    results = None
    if rank == 0:
        results = []
        for p in parts:
            results.extend(p)
    seconds = time.perf_counter() - t0
    checksum = sum(results) % 2**64 if rank == 0 else None
    return f"{checksum}", seconds, []


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


class Parser(argparse.ArgumentParser):
    """Prints only on rank 0; every rank exits with the same status."""

    def _print_message(self, message, file=None):
        if rank == 0:
            super()._print_message(message, file)


def parse_args(argv):
    parser = Parser(prog="mpi4py_plain.py",
                    description="The seed workloads with plain mpi4py, over the MPI ranks (see the docstring).",
                    epilog="Run as: mpirun -np P /usr/bin/python3 mpi4py_plain.py <workload> [args]")
    sub = parser.add_subparsers(dest="workload", required=True, metavar="workload", parser_class=Parser)
    w = sub.add_parser("primes", help="count and sum of primes in [1, N]")
    w.add_argument("N", type=whole(1))
    w = sub.add_parser("rangesum", help="sum of [0, N), R times")
    w.add_argument("N", type=whole(0))
    w.add_argument("R", type=whole(1))
    w = sub.add_parser("factorials", help="sum of bit lengths of k! for k in 1..K")
    w.add_argument("K", type=whole(1))
    for name in ("counter_lock", "counter_atomic"):
        w = sub.add_parser(name, help="every rank adds 1 N times to one counter in a window on rank 0")
        w.add_argument("N", type=whole(1))
    w = sub.add_parser("queue", help="rank 0 produces N items for ranks 1..P-1 (P >= 2)")
    w.add_argument("N", type=whole(0))
    w = sub.add_parser("pipe_pingpong", help="R round trips of a counter between ranks 0 and 1 (P >= 2)")
    w.add_argument("R", type=whole(1))
    w = sub.add_parser("pipe_bw", help="M messages of S bytes from rank 0 to rank 1 (P >= 2)")
    w.add_argument("M", type=whole(1))
    w.add_argument("S", type=whole(1))
    w = sub.add_parser("map", help="[i*i for i in range(N)] in parallel, in order on rank 0")
    w.add_argument("N", type=whole(0))
    a = parser.parse_args(argv)
    if a.workload in ("queue", "pipe_pingpong", "pipe_bw") and size < 2:
        parser.error(f"{a.workload} needs at least 2 ranks (mpirun -np 2 or more)")
    return a


RUNS = {
    "primes": run_primes, "rangesum": run_rangesum, "factorials": run_factorials,
    "counter_lock": run_counter_lock, "counter_atomic": run_counter_atomic, "queue": run_queue,
    "pipe_pingpong": run_pingpong, "pipe_bw": run_bandwidth, "map": run_map,
}


def main():
    a = parse_args(sys.argv[1:])
    checksum, seconds, extra = RUNS[a.workload](a)
    if rank == 0:
        for line in extra:
            print(line)
        print(f"checksum: {checksum}")
        print(f"kernel: {seconds:.6f} s")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
