#!/usr/bin/python3
"""Empty tasks in one run: mpiproc's task_pool (bench --workloads tasks, next to a raw MPI task
farm and round trip), mpi4py.futures (MPIPoolExecutor: a manager rank and NP workers) and Python's
multiprocessing.Pool(NP), each submitting N tasks and taking every result (throughput), then R
tasks one at a time (round trip). Prints one table. Run through scripts/bench-tasks.

Usage: tasks.py [--np NP] [--tasks N] [--rounds R] [--build DIR]; exit 2 on a bad command line,
1 if a run fails.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"


def positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1: {text!r}")
    return value


def run(argv):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.exit(f"tasks.py: {' '.join(argv)} failed ({done.returncode}): {(done.stderr or done.stdout)[-600:]}")
    return done.stdout


def grab(pattern, text):
    m = re.search(pattern, text)
    if not m:
        sys.exit(f"tasks.py: no {pattern!r} in:\n{text[-600:]}")
    return float(m.group(1))


def main():
    parser = argparse.ArgumentParser(prog="tasks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--np", type=positive, default=2, help="ranks for mpiproc, workers for the others (default 2; at least 2)")
    parser.add_argument("--tasks", type=positive, default=20000, help="tasks in the throughput runs (default 20000)")
    parser.add_argument("--rounds", type=positive, default=1000, help="tasks in the round-trip runs (default 1000)")
    parser.add_argument("--build", default="build", help="the build directory (default build)")
    a = parser.parse_args()
    if a.np < 2:
        parser.error("--np: need 2 or more (a raw task farm and a round trip need a second rank)")
    mpirun = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    bench = str(Path(a.build) / "bin" / "bench")
    # mpiproc times a million tasks (the figure the others are far from), best of 3.
    ours = run(mpirun + ["-np", str(a.np), bench, "--workloads", "tasks", "--trials", "3"])
    futures = [PYTHON, "-m", "mpi4py.futures", str(HERE / "python" / "mpi4py_futures.py")]
    fut_tput = run(mpirun + ["-np", str(a.np + 1)] + futures + ["tasks", str(a.tasks)])
    fut_rtt = run(mpirun + ["-np", str(a.np + 1)] + futures + ["task_rtt", str(a.rounds)])
    pool = [PYTHON, str(HERE / "python" / "pool.py"), "--procs", str(a.np)]
    pool_tput, pool_rtt = run(pool + ["tasks", str(a.tasks)]), run(pool + ["task_rtt", str(a.rounds)])

    print(f"empty tasks, {a.np} ranks or workers (mpi4py.futures: one more rank, its manager)\n")
    print("| form | tasks/s, one submitter | round trip (us) |")
    print("| --- | ---: | ---: |")
    one = grab(r"tasks, rank 0 submits .* ([\d.]+) tasks/s  raw", ours)
    every = grab(r"tasks, every rank submits .* ([\d.]+) tasks/s", ours)
    farm = grab(r"raw farm .* ([\d.]+) tasks/s", ours)
    trip = grab(r"task round trip .*mpiproc +([\d.]+) us", ours)
    raw_trip = grab(r"raw send/recv round trip +([\d.]+) us", ours)
    print(f"| mpiproc task_pool | {one:,.0f} ({every:,.0f} from every rank) | {trip:.1f} (placed on another rank) |")
    print(f"| raw MPI (task farm; send/recv ping-pong) | {farm:,.0f} | {raw_trip:.1f} |")
    rate, trip_us = r"tasks/s: ([\d.]+)", r"round trip: ([\d.]+) us"
    print(f"| mpi4py.futures | {grab(rate, fut_tput):,.0f} | {grab(trip_us, fut_rtt):.1f} |")
    print(f"| multiprocessing.Pool | {grab(rate, pool_tput):,.0f} | {grab(trip_us, pool_rtt):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
