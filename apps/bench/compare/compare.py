#!/usr/bin/python3
"""The comparison suite: the seed workloads in every form, timed in one run.

Forms: mpiproc (our programs), hand-written raw MPI C++ (compare_raw, the limit), sequential C++
(compare_seq), Python multiprocessing as the seeds write it (python/pool.py), plain mpi4py
(python/mpi4py_plain.py) and mpi4py.futures (python/mpi4py_futures.py). Every form prints a
checksum, which must agree across forms, and its own kernel time; this driver adds the whole
process's time (launcher, start-up and all) and writes, into --out:

  table.md      medians (min-max) of kernel and whole-process times, the ratios mpiproc / raw MPI
  times.png     time per workload per form (log scale)
  speedup.png   speed-up against ranks, next to the machine's measured two-process capacity
  size.png      time against problem size for primes and map
  results.json  every run

Run through scripts/compare, which installs and builds first. Exit status: 0 when every run
succeeded and every checksum agreed, 1 otherwise, 2 for a bad command line.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"  # Debian's: the interpreter python3-mpi4py installs into

FORMS = ["mpiproc", "raw", "seq", "pool", "mpi4py", "futures"]
LABELS = {
    "mpiproc": "mpiproc",
    "raw": "raw MPI C++",
    "seq": "sequential C++",
    "pool": "Python multiprocessing",
    "mpi4py": "mpi4py",
    "futures": "mpi4py.futures",
}
PYTHON_FORMS = {"pool", "mpi4py", "futures"}
# Where pure Python stops being worth the wait here (primes 1e7: about a minute of CPU; map 1e8: a
# list of 1e8 ints, several GB, per copy).
PYTHON_MAX_N = {"primes": 10**7, "map": 10**7}


class Case:
    """One workload at one size: the arguments every form takes, and how to read our program."""

    def __init__(self, key, label, workload, args, ranks=None, rate=None):
        self.key, self.label, self.workload, self.args = key, label, workload, [str(a) for a in args]
        self.ranks = ranks  # fixed rank count (the queue: a producer and two consumers)
        self.rate = rate  # (unit, amount of work) for an extra per-operation column


def mpiproc_command(case):
    """Our program for a case, and a function from its output to (checksum, kernel seconds)."""
    w, a = case.workload, case.args

    def grab(pattern, text):
        m = re.search(pattern, text)
        if not m:
            raise ValueError(f"no match for {pattern!r}")
        return m.groups()

    if w == "primes":
        return ["primes", "-n", a[0], "--no-progress"], lambda t: (
            " ".join(grab(r"(\d+) primes, sum (\d+)", t)), float(grab(r"time: ([\d.]+) s", t)[0]))
    if w == "rangesum":
        return ["rangesum", "--last", a[0], "--repeat", a[1], "--no-progress"], lambda t: (
            grab(r"= (-?\d+)", t)[0], float(grab(r"time: ([\d.]+) s", t)[0]))
    if w == "factorials":
        return ["factorials", "--max", a[0], "--no-progress"], lambda t: (
            grab(r"sum of bit lengths (\d+)", t)[0], float(grab(r"time: ([\d.]+) s", t)[0]))
    if w in ("counter_lock", "counter_atomic"):
        way = w.split("_")[1]
        return ["counter", "-n", a[0], "--ways", way], lambda t: (
            grab(way + r": +final value (\d+)", t)[0], float(grab(way + r":.* time: ([\d.]+) s", t)[0]))
    if w == "queue":
        return ["prodcons", "-n", a[0]], lambda t: (
            " ".join(grab(r"taken: (\d+) sum: (\d+)", t)), float(grab(r"time: ([\d.]+) s", t)[0]))
    if w == "pipe_pingpong":
        return ["pipe", "--mode", "pingpong", "--rounds", a[0]], lambda t: (
            str(2 * int(grab(r"\((\d+) rounds\)", t)[0])), float(grab(r"time: ([\d.]+) s", t)[0]))
    if w == "pipe_bw":
        return ["pipe", "--mode", "bandwidth", "--rounds", a[0], "--size", a[1]], lambda t: (
            grab(r"received: (\d+) bytes", t)[0], float(grab(r"time: ([\d.]+) s", t)[0]))
    if w == "map":
        return ["squares", "-n", a[0], "--sum", "--schedule", "block"], lambda t: (
            grab(r"modulo 2\^64: (\d+)", t)[0], float(grab(r"time: ([\d.]+) s", t)[0]))
    raise ValueError(w)


def standard_reader(text):
    """The other forms' two lines: `checksum: X` and `kernel: T s`."""
    checksum = re.search(r"^checksum: (.+)$", text, re.M)
    kernel = re.search(r"^kernel: ([\d.]+) s$", text, re.M)
    if not checksum or not kernel:
        raise ValueError("no checksum/kernel lines")
    return checksum.group(1).strip(), float(kernel.group(1))


class Runner:
    def __init__(self, opts):
        self.opts = opts
        self.bin = Path(opts.build).resolve() / "bin"
        self.mpirun = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
        self.runs = []  # every run, for results.json
        self.cache = {}  # (form, workload, args, ranks) -> summary, so the sweeps reuse the table's runs
        self.failures = []

    def command(self, form, case, ranks):
        """The command line of one form of a case, its output reader, or None where it does not apply."""
        w, a = case.workload, case.args
        if form in PYTHON_FORMS and w in PYTHON_MAX_N and int(a[0]) > PYTHON_MAX_N[w]:
            return None
        if form == "mpiproc":
            argv, reader = mpiproc_command(case)
            return self.mpirun + ["-np", str(ranks), str(self.bin / argv[0])] + argv[1:], reader
        if form == "raw":
            return self.mpirun + ["-np", str(ranks), str(self.bin / "compare_raw"), w] + a, standard_reader
        if form == "seq":
            if w.startswith("counter"):  # one process makes every rank's increments
                a = a + [str(ranks)]
            return [str(self.bin / "compare_seq"), w] + a, standard_reader
        if form == "pool":
            return [PYTHON, str(HERE / "python" / "pool.py"), "--procs", str(ranks), w] + a, standard_reader
        if form == "mpi4py":
            return self.mpirun + ["-np", str(ranks), PYTHON, str(HERE / "python" / "mpi4py_plain.py"), w] + a, standard_reader
        if form == "futures":
            # rank 0 is the executor's manager, the other `ranks` ranks its workers
            return self.mpirun + ["-np", str(ranks + 1), PYTHON, "-m", "mpi4py.futures",
                                  str(HERE / "python" / "mpi4py_futures.py"), w] + a, standard_reader
        raise ValueError(form)

    def once(self, form, case, ranks, argv, reader):
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.opts.timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {self.opts.timeout} s"}
        whole = time.perf_counter() - start
        if done.returncode == 3:
            return {"not_applicable": done.stderr.strip().splitlines()[-1:] or ["not applicable"]}
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip())[-400:]
            return {"error": f"exit {done.returncode}: {tail}"}
        try:
            checksum, kernel = reader(done.stdout)
        except ValueError as e:
            return {"error": f"unreadable output ({e}): {done.stdout[-300:]}"}
        return {"checksum": checksum, "kernel": kernel, "whole": whole}

    def measure(self, form, case, ranks, repeats=None):
        """Runs one form of a case `repeats` times (once when a run is long); returns a summary."""
        key = (form, case.workload, tuple(case.args), ranks)
        if key in self.cache:
            return self.cache[key]
        cmd = self.command(form, case, ranks)
        if cmd is None:
            summary = {"skipped": "not run: too slow or too big in pure Python here"}
            self.cache[key] = summary
            return summary
        argv, reader = cmd
        repeats = repeats or self.opts.repeats
        results = []
        for i in range(repeats):
            r = self.once(form, case, ranks, argv, reader)
            self.runs.append({"form": form, "workload": case.workload, "args": case.args, "ranks": ranks,
                              "command": argv, **r})
            results.append(r)
            if "kernel" not in r or (i == 0 and r["whole"] > self.opts.long):
                break
        last = results[-1]
        if "not_applicable" in last:
            summary = {"skipped": "not applicable"}
        elif "error" in last:
            summary = {"error": last["error"]}
            self.failures.append(f"{LABELS[form]} {case.label} at {ranks} ranks: {last['error']}")
        else:
            kernels = [r["kernel"] for r in results]
            wholes = [r["whole"] for r in results]
            checksums = {r["checksum"] for r in results}
            summary = {"checksum": checksums.pop() if len(checksums) == 1 else "DIFFERS BETWEEN RUNS",
                       "kernel": statistics.median(kernels), "kernel_min": min(kernels), "kernel_max": max(kernels),
                       "whole": statistics.median(wholes), "whole_min": min(wholes), "whole_max": max(wholes),
                       "runs": len(results)}
        self.cache[key] = summary
        shown = (f"{summary['kernel']:.4f} s kernel, {summary['whole']:.3f} s whole, checksum {summary['checksum']}"
                 if "kernel" in summary else summary.get("skipped") or "FAILED: " + summary["error"])
        print(f"  {LABELS[form]:<24} {case.label:<28} np {ranks}: {shown}", flush=True)
        return summary


def capacity(runner):
    """Two busy processes against one: how much of a second core this machine really gives."""
    argv = [str(runner.bin / "compare_seq"), "primes", str(runner.opts.capacity_n)]

    def kernel(proc_out):
        return standard_reader(proc_out)[1]

    alone = min(kernel(subprocess.run(argv, capture_output=True, text=True, check=True).stdout) for _ in range(2))
    pairs = []
    for _ in range(2):
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate()[0] for p in procs]
        pairs.append(statistics.mean(kernel(o) for o in outs))
    together = min(pairs)
    return {"alone": alone, "two_together": together, "capacity": 2 * alone / together}


def cell(summary, what):
    if "kernel" not in summary:
        return "—" if "skipped" in summary else "FAILED"
    med, lo, hi = summary[what], summary[what + "_min"], summary[what + "_max"]
    text = fmt(med)
    if summary["runs"] > 1:
        text += f" ({fmt(lo)}–{fmt(hi)})"
    return text


def fmt(seconds):
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def agree(runner, case, ranks_of):
    """The checksums of a case across forms: one value, or a failure."""
    values = {}
    for form in runner.opts.forms:
        s = runner.cache.get((form, case.workload, tuple(case.args), ranks_of(case)))
        if s and "checksum" in s:
            values.setdefault(s["checksum"], []).append(LABELS[form])
    if len(values) > 1:
        runner.failures.append(f"{case.label}: checksums differ: {values}")
        return "DIFFER: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in values.items())
    return next(iter(values), "—")


def write_table(runner, cases, ranks_of, cap, scaling, sweeps, out):
    forms = runner.opts.forms
    lines = ["# mpiproc against hand-written MPI, sequential C++ and Python", ""]
    lines.append(f"Machine: {os.cpu_count()} cores ({platform_line()}). Ranks: {runner.opts.ranks} unless the "
                 f"workload says otherwise. Each cell: median of {runner.opts.repeats} runs (min–max); runs over "
                 f"{runner.opts.long:g} s ran once. Kernel = the form's own timer around the work; whole = the "
                 "process from launch to exit, launcher and start-up included. — = not applicable or not run "
                 "(pure Python over 1e7 items). mpi4py.futures runs one more rank, its idle manager.")
    lines.append("")
    if cap:
        lines.append(f"Two-process capacity: one busy process {cap['alone']:.3f} s, two at once {cap['two_together']:.3f} s "
                     f"each: this machine gives **{cap['capacity']:.2f}x** for 2 processes (2.00 = two full cores). "
                     "Parallel efficiency is judged against it.")
        lines.append("")
    for what, title in (("kernel", "Kernel time"), ("whole", "Whole process")):
        lines.append(f"## {title}")
        lines.append("")
        lines.append("| workload | np | " + " | ".join(LABELS[f] for f in forms) + " |")
        lines.append("|---|---|" + "---|" * len(forms))
        for c in cases:
            r = ranks_of(c)
            lines.append(f"| {c.label} | {r} | " + " | ".join(
                cell(runner.cache[(f, c.workload, tuple(c.args), r)], what) for f in forms) + " |")
        lines.append("")
    if "mpiproc" in forms and "raw" in forms:
        lines.append("## mpiproc / raw MPI (1.00 = no overhead; median over median)")
        lines.append("")
        lines.append("| workload | np | kernel | whole process | checksum (all forms agree) |")
        lines.append("|---|---|---|---|---|")
        for c in cases:
            r = ranks_of(c)
            ours, raw = (runner.cache[(f, c.workload, tuple(c.args), r)] for f in ("mpiproc", "raw"))
            ratio = lambda k: f"{ours[k] / raw[k]:.2f}" if k in ours and k in raw and raw[k] > 0 else "—"
            lines.append(f"| {c.label} | {r} | {ratio('kernel')} | {ratio('whole')} | {agree(runner, c, ranks_of)} |")
        lines.append("")
    if scaling:
        lines.append("## Speed-up against ranks (kernel time at 1 rank / at n ranks)")
        lines.append("")
        ranks = runner.opts.scaling_ranks
        lines.append("| form | workload | " + " | ".join(f"np {n}" for n in ranks) + " |")
        lines.append("|---|---|" + "---|" * len(ranks))
        for form, label, points in scaling:
            lines.append(f"| {LABELS[form]} | {label} | " + " | ".join(
                f"{points[n]:.2f}" if n in points else "—" for n in ranks) + " |")
        lines.append("")
    for title, series in sweeps:
        lines.append(f"## {title}: kernel time against N")
        lines.append("")
        sizes = sorted({n for _, pts in series for n in pts})
        lines.append("| form | " + " | ".join(f"{n:.0e}" for n in sizes) + " |")
        lines.append("|---|" + "---|" * len(sizes))
        for form, pts in series:
            lines.append(f"| {LABELS[form]} | " + " | ".join(fmt(pts[n]) if n in pts else "—" for n in sizes) + " |")
        lines.append("")
    if runner.failures:
        lines.append("## Failures")
        lines.append("")
        lines += [f"- {f}" for f in runner.failures]
        lines.append("")
    (out / "table.md").write_text("\n".join(lines))


def platform_line():
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return model


def charts(runner, cases, ranks_of, cap, scaling, sweeps, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forms = runner.opts.forms
    colors = dict(zip(FORMS, ["#d62728", "#1f77b4", "#7f7f7f", "#2ca02c", "#ff7f0e", "#9467bd"]))

    fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.1 * len(cases)), 9), sharex=True)
    width = 0.8 / len(forms)
    for ax, what, title in zip(axes, ("kernel", "whole"), ("kernel time", "whole process")):
        for i, f in enumerate(forms):
            xs, ys = [], []
            for j, c in enumerate(cases):
                s = runner.cache[(f, c.workload, tuple(c.args), ranks_of(c))]
                if "kernel" in s:
                    xs.append(j + (i - (len(forms) - 1) / 2) * width)
                    ys.append(s[what])
            ax.bar(xs, ys, width, label=LABELS[f], color=colors[f])
        ax.set_yscale("log")
        ax.set_ylabel(f"{title} (s, log)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend(ncol=3, fontsize=8)
    axes[1].set_xticks(range(len(cases)))
    axes[1].set_xticklabels([f"{c.label}\nnp {ranks_of(c)}" for c in cases], rotation=35, ha="right", fontsize=8)
    axes[0].set_title("Seed workloads, every form (lower is better)")
    fig.tight_layout()
    fig.savefig(out / "times.png", dpi=110)
    plt.close(fig)

    if scaling:
        fig, ax = plt.subplots(figsize=(7, 5))
        ranks = runner.opts.scaling_ranks
        ax.plot(ranks, ranks, "k--", lw=1, label="ideal")
        if cap:
            ax.axhline(cap["capacity"], color="k", lw=0.8, ls=":", label=f"2-process capacity ({cap['capacity']:.2f}x)")
        for form, label, points in scaling:
            ns = [n for n in ranks if n in points]
            ax.plot(ns, [points[n] for n in ns], "o-", color=colors[form], label=f"{LABELS[form]}: {label}")
        ax.set_xlabel(f"ranks (processes); this machine has {os.cpu_count()} cores")
        ax.set_ylabel("speed-up (kernel at 1 rank / at n)")
        ax.set_xticks(ranks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("Speed-up against ranks")
        fig.tight_layout()
        fig.savefig(out / "speedup.png", dpi=110)
        plt.close(fig)

    if sweeps:
        fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 5))
        axes = axes if len(sweeps) > 1 else [axes]
        for ax, (title, series) in zip(axes, sweeps):
            for form, pts in series:
                ns = sorted(pts)
                ax.plot(ns, [pts[n] for n in ns], "o-", color=colors[form], label=LABELS[form])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("N")
            ax.set_ylabel("kernel time (s, log)")
            ax.set_title(f"{title}, np {runner.opts.ranks}")
            ax.grid(which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "size.png", dpi=110)
        plt.close(fig)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--build", default="build", help="build folder with bin/ (primes, compare_raw, ...)")
    p.add_argument("--out", default="build/compare", help="folder for table.md, the charts and results.json")
    p.add_argument("--ranks", type=int, default=os.cpu_count() or 2, help="ranks (processes) for the table")
    p.add_argument("--repeats", type=int, default=3, help="runs of each cell; the table shows the median")
    p.add_argument("--long", type=float, default=15.0, help="a cell whose first run takes longer runs once")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a run counts as failed")
    p.add_argument("--forms", default=",".join(FORMS), help="comma-separated subset of: " + ", ".join(FORMS))
    p.add_argument("--quick", action="store_true", help="small sizes, one run each, no 1e8 sizes (a smoke test)")
    p.add_argument("--no-sweeps", dest="sweeps", action="store_false", help="skip time against N")
    p.add_argument("--no-scaling", dest="scaling", action="store_false", help="skip speed-up against ranks")
    p.add_argument("--no-charts", dest="charts", action="store_false", help="write the table only")
    p.add_argument("--scaling-ranks", default="1,2,4", help="rank counts for the speed-up chart")
    p.add_argument("--capacity-n", type=int, default=3_000_000, help="primes N for the two-process capacity check")
    opts = p.parse_args(argv)
    try:
        opts.forms = [f for f in opts.forms.split(",") if f]
        bad = [f for f in opts.forms if f not in FORMS]
        if bad or not opts.forms:
            raise ValueError(f"unknown form(s) {bad}; choose from {', '.join(FORMS)}")
        opts.scaling_ranks = [int(n) for n in opts.scaling_ranks.split(",")]
        if any(n < 1 for n in opts.scaling_ranks) or opts.ranks < 1 or opts.repeats < 1:
            raise ValueError("rank counts and --repeats must be at least 1")
    except ValueError as e:
        p.error(str(e))
    if opts.quick:
        opts.repeats = 1
    return opts


def main(argv):
    opts = parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(opts)
    q = opts.quick
    e6, e7, e8 = (10**4, 10**5, 10**6) if q else (10**6, 10**7, 10**8)
    sum_n, fact_k, ops, messages = (5 * 10**5, 1200, 10**3, 20) if q else (5 * 10**7, 12000, 10**5, 200)
    cases = [
        Case("primes_1e6", f"primes [1, {e6:.0e}]", "primes", [e6]),
        Case("primes_1e7", f"primes [1, {e7:.0e}]", "primes", [e7]),
        Case("rangesum", f"range sum [0, {sum_n:.0e}) x 2", "rangesum", [sum_n, 2]),
        Case("factorials", f"factorials 1..{fact_k:,}", "factorials", [fact_k]),
        Case("counter_lock", f"counter, lock ({ops:,} per rank)", "counter_lock", [ops]),
        Case("counter_atomic", f"counter, atomic ({ops:,} per rank)", "counter_atomic", [ops]),
        Case("queue", f"queue {ops:,} items, 2 consumers", "queue", [ops], ranks=3),
        Case("pipe_pingpong", f"pipe ping-pong x {ops:,}", "pipe_pingpong", [ops], ranks=2),
        Case("pipe_bw", f"pipe {messages} x 1 MiB", "pipe_bw", [messages, 1 << 20], ranks=2),
        Case("map_1e6", f"map x*x, {e6:.0e} items", "map", [e6]),
        Case("map_1e8", f"map x*x, {e8:.0e} items", "map", [e8]),
    ]
    ranks_of = lambda c: c.ranks or opts.ranks

    cap = None
    if "seq" in opts.forms or opts.scaling:
        print("two-process capacity ...", flush=True)
        cap = capacity(runner)
        print(f"  one {cap['alone']:.3f} s, two at once {cap['two_together']:.3f} s each: {cap['capacity']:.2f}x", flush=True)

    print(f"table (np {opts.ranks}) ...", flush=True)
    for c in cases:
        for f in opts.forms:
            runner.measure(f, c, ranks_of(c))

    scaling = []
    if opts.scaling:
        print("speed-up against ranks ...", flush=True)
        for form in [f for f in opts.forms if f != "seq"]:
            c = cases[0] if form in PYTHON_FORMS else cases[1]
            kernels = {}
            for n in opts.scaling_ranks:
                s = runner.measure(form, c, n, repeats=1 if n != opts.ranks else None)
                if "kernel" in s:
                    kernels[n] = s["kernel"]
            if 1 in kernels:
                scaling.append((form, c.label, {n: kernels[1] / k for n, k in kernels.items()}))

    sweeps = []
    if opts.sweeps:
        print("time against N ...", flush=True)
        sizes = [10**k for k in (range(3, 7) if q else range(5, 9))]
        for title, workload in (("primes", "primes"), ("map x*x", "map")):
            series = []
            for form in opts.forms:
                pts = {}
                for n in sizes:
                    s = runner.measure(form, Case(f"{workload}_{n}", f"{title} N={n:.0e}", workload, [n]), opts.ranks,
                                       repeats=1)
                    if "kernel" in s:
                        pts[n] = s["kernel"]
                if pts:
                    series.append((form, pts))
            sweeps.append((title, series))

    write_table(runner, cases, ranks_of, cap, scaling, sweeps, out)
    (out / "results.json").write_text(json.dumps({"capacity": cap, "runs": runner.runs}, indent=1))
    if opts.charts:
        charts(runner, cases, ranks_of, cap, scaling, sweeps, out)
    print(f"wrote {out}/table.md" + (", times.png, speedup.png, size.png" if opts.charts else "") + ", results.json")
    if runner.failures:
        print("FAILED:\n  " + "\n  ".join(runner.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
