#!/usr/bin/env bash
# job_test.sh CLUSTER_DIR REPO CASE: submits a script of REPO/jobs/ unchanged with sbatch to the
# cluster of cluster.sh in CLUSTER_DIR, as a user would (sizes on the sbatch command line only),
# from the current folder (the test's own, not the repository), waits for it and checks the
# answers in its output files and the job's final state. Exit 77 (skipped) when the cluster is not
# up (not root, or Slurm could not start: slurm.setup says why).
#
# Cases: primes, primes_mpirun, seeds, bench, sweep (the job array), requeue (scontrol requeue
# mid-run), timelimit (--time with --signal=B:USR1@N: the job saves, exits 75, requeues itself),
# kill (SIGKILL of one rank: the job ends within 10 s, FAILED, leaving nothing).
# MPIPROC_BIN, when set, is passed on to the jobs (a build elsewhere than REPO/build).
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: job_test.sh CLUSTER_DIR REPO CASE" >&2; exit 2; }
cluster=$1 repo=$2 case=$3
here=$(cd "$(dirname "$0")" && pwd)

if ! "$here/cluster.sh" status "$cluster"; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "SKIPPED: a private Slurm cluster needs root"
  else
    echo "SKIPPED: the Slurm cluster in $cluster is not up (slurm.setup says why)"
  fi
  exit 77
fi
# shellcheck disable=SC1091  # written by cluster.sh up
source "$cluster/env"
# Open MPI's mpirun refuses root without these (the mpirun fallback; sbatch passes them on).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -f mpiproc-* ./*.ckpt*

jobs=()
cleanup() {
  local job
  for job in "${jobs[@]}"; do scancel "$job" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
  local job file
  echo "FAIL: $*"
  for job in "${jobs[@]}"; do scontrol show job "$job" 2>/dev/null || true; done
  for file in mpiproc-*.out; do
    [[ -f $file ]] && { echo "--- $file"; cat "$file"; }
  done
  echo "--- slurmctld log (last lines)"
  tail -n 30 "$cluster/log/slurmctld.log" 2>/dev/null || true
  exit 1
}

submit() {
  local job
  job=$(sbatch --parsable "$@") || fail "sbatch $* was refused"
  job=${job%%;*}
  jobs+=("$job")
  echo "submitted job $job: sbatch $*" >&2
  echo "$job"
}

# The job's (every array task's) states, one per line.
states() { scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
field() { scontrol show job -o "$1" 2>/dev/null | grep -o " $2=[^ ]*" | head -1 | cut -d= -f2; }

# Waits until every task of the job has ended (up to LIMIT seconds) and that it COMPLETED.
wait_completed() {
  local job=$1 limit=$2 start=$SECONDS all
  while :; do
    all=$(states "$job")
    [[ -n $all ]] || fail "job $job is unknown to Slurm"
    grep -qvE '^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY)$' <<<"$all" || break
    ((SECONDS - start < limit)) || fail "job $job did not end within $limit s (states: ${all//$'\n'/ })"
    sleep 0.5
  done
  grep -qvx COMPLETED <<<"$all" && fail "job $job ended ${all//$'\n'/ }, not COMPLETED"
  echo "job $job COMPLETED ($(wc -l <<<"$all") task(s)) after $((SECONDS - start)) s"
}

expect() {  # expect FILE REGEX...: every regex matches a line of FILE
  local file=$1 regex
  shift
  [[ -f $file ]] || fail "no output file $file"
  for regex in "$@"; do
    grep -qE -- "$regex" "$file" || fail "$file has no line matching: $regex"
  done
}

header_checks=("^== .* job [0-9]+.* restart 0 on $(hostname -s)" "allocation: 1 node\(s\) " "mpiproc: commit [0-9a-f]+"
               "programs in ${MPIPROC_BIN:-$repo/build/bin}" "Open MPI\)? [0-9]")

# The primes program's answers: primes up to N, their count and sum.
declare -A answer=([1000]="168 primes, sum 76127" [10000]="1229 primes, sum 5736396"
                   [100000]="9592 primes, sum 454396537" [1000000]="78498 primes, sum 37550402023"
                   [10000000]="664579 primes, sum 3203324994356" [20000000]="1270607 primes, sum 12272577818052"
                   [40000000]="2433654 primes, sum 47088408550139" [80000000]="4669382 primes, sum 180946446237951")

# A resumable job stopped mid-run (by STOP) and requeued: completes with the uninterrupted answer,
# the last run computing only part of the range, and the log appended to, not truncated.
check_resumed() {
  local job=$1 n=$2 out=mpiproc-resumable-$1.out restarts computed
  restarts=$(field "$job" Restarts)
  [[ $restarts -ge 1 ]] || fail "job $job completed without a restart (Restarts=$restarts)"
  expect "$out" "primes in \[1, $n\]: ${answer[$n]}" "ranks exited with status 0" \
    "restart 0 on" "restart $restarts on" "${header_checks[@]}"
  computed=$(sed -n "s/.*: computed \([0-9]*\) of $n items in this run/\1/p" "$out" | tail -1)
  [[ -n $computed && $computed -lt $n ]] || fail "the last run computed ${computed:-?} of $n items: it did not resume"
  ls ./*.ckpt* >/dev/null 2>&1 && fail "the checkpoint files were not deleted: $(ls ./*.ckpt*)"
  echo "job $job: $restarts restart(s), the last run computed $computed of $n items"
}

case $case in
  primes)
    job=$(submit -n 4 "$repo/jobs/primes.sbatch" --max 1000000)
    wait_completed "$job" 90
    expect "mpiproc-primes-$job.out" "${header_checks[@]}" "4 task\(s\)" "launcher: srun --mpi=pmix --kill-on-bad-exit=1" \
      "primes in \[1, 1000000\]: ${answer[1000000]}" "ranks: 4 "
    ;;
  primes_mpirun)
    job=$(LAUNCH=mpirun submit -N 1 -n 4 "$repo/jobs/primes.sbatch" --max 1000000 --schedule guided)
    wait_completed "$job" 90
    expect "mpiproc-primes-$job.out" "${header_checks[@]}" "launcher: mpirun" \
      "primes in \[1, 1000000\]: ${answer[1000000]}" "ranks: 4 +schedule: guided"
    ;;
  seeds)
    job=$(submit -n 4 "$repo/jobs/seeds.sbatch")
    wait_completed "$job" 150
    expect "mpiproc-seeds-$job.out" "${header_checks[@]}" "^\[0, 1, 4, 9, 16, 25, 36, 49, 64, 81\]" \
      "primes in \[1, 1000000\]: ${answer[1000000]}" "= 2499999950000000" "sum of bit lengths" \
      "lock: +final value" "highest concurrency observed 2" "^3.1415927" "items put 5, taken 5" \
      "worker 2 received: worker 1 here, hello!" "^\{'0.25': 'None', '1': '1', '2': '2'\}" "all seed programs ran"
    ;;
  bench)
    job=$(submit -n 4 "$repo/jobs/bench.sbatch" --workloads primes,rangesum,factorials --primes 20000 --rangesum 100000 --factorials 300 --trials 1)
    wait_completed "$job" 150
    out=mpiproc-bench-$job.out
    expect "$out" "${header_checks[@]}" "^-- 1 rank\(s\)" "^-- 2 rank\(s\)" "^-- 4 rank\(s\)" "primes +dynamic +raw"
    [[ $(grep -cE "factorials +guided" "$out") -eq 3 ]] || fail "$out: not 3 runs of the benchmark (1, 2, 4 ranks)"
    ;;
  sweep)
    # The array as the script sets it (0-4): each task its own size, its own log and answer.
    job=$(submit "$repo/jobs/sweep.sbatch")
    wait_completed "$job" 150
    sizes=(1000 10000 100000 1000000 10000000)
    for task in 0 1 2 3 4; do
      n=${sizes[$task]}
      expect "mpiproc-sweep-${job}_$task.out" "${header_checks[@]}" "\(array task $task\)" "sweep: task $task, primes up to $n" \
        "primes in \[1, $n\]: ${answer[$n]}" "ranks: 2 "
    done
    [[ $(states "$job" | grep -c COMPLETED) -eq 5 ]] || fail "not 5 completed array tasks"
    ;;
  requeue)
    # scontrol requeue once the ranks have saved some work (their part files exist); a run that
    # ended first (a fast machine) is tried again, larger.
    for n in 20000000 40000000; do
      job=$(submit "$repo/jobs/resumable.sbatch" --max $n)
      start=$SECONDS
      until ls ./*.ckpt.part-* >/dev/null 2>&1 && grep -q "checkpoint:" "mpiproc-resumable-$job.out" 2>/dev/null; do
        ((SECONDS - start < 60)) || fail "job $job saved no progress within 60 s"
        sleep 0.2
      done
      sleep 1
      if [[ $(states "$job") == RUNNING ]] && scontrol requeue "$job"; then
        echo "requeued job $job after $((SECONDS - start)) s"
        wait_completed "$job" 180
        check_resumed "$job" "$n"
        expect "mpiproc-resumable-$job.out" "SIGTERM: the ranks save and stop" "interrupted by SIGTERM"
        exit 0
      fi
      echo "job $job ended before the requeue; again, larger"
      wait_completed "$job" 60
    done
    fail "every run ended before it could be requeued"
    ;;
  timelimit)
    # A one-minute limit, signalled 50 s before it. Slurm checks time limits every 30 s, so the
    # signal comes 10-40 s into each run: a first run that ended before it (a fast machine) is
    # tried again, larger.
    for n in 40000000 80000000; do
      job=$(submit --time=1 --signal=B:USR1@50 "$repo/jobs/resumable.sbatch" --max $n)
      wait_completed "$job" 300
      if [[ $(field "$job" Restarts) -gt 0 ]]; then
        check_resumed "$job" "$n"
        expect "mpiproc-resumable-$job.out" "SIGUSR1: the time limit is near" "interrupted by SIGUSR1" \
          "ranks exited with status 75" "== requeued: the job resumes"
        exit 0
      fi
      echo "job $job ended before the time-limit signal; again, larger"
    done
    fail "every run ended before the time-limit signal"
    ;;
  kill)
    # SIGKILL of one rank under srun: the job ends within 10 s, FAILED, its log names the task, and
    # no process of the job nor any file the ranks had mapped in /dev/shm or /tmp is left.
    touch launched
    job=$(submit -n 4 "$repo/jobs/primes.sbatch" --max 2000000000)
    start=$SECONDS
    declare -A rank_pid=()
    until [[ ${#rank_pid[@]} -eq 4 ]]; do
      ((SECONDS - start < 60)) || fail "job $job did not start 4 ranks within 60 s"
      sleep 0.2
      rank_pid=()
      for env in /proc/[0-9]*/environ; do
        pid=${env#/proc/} pid=${pid%/environ}
        [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */primes ]] || continue
        vars=$(tr '\0' '\n' <"$env" 2>/dev/null) || continue
        grep -qx "SLURM_JOB_ID=$job" <<<"$vars" || continue
        rank=$(sed -n 's/^SLURM_PROCID=//p' <<<"$vars")
        [[ -n $rank ]] && rank_pid[$rank]=$pid
      done
    done
    sleep 1  # every rank in its map call
    mapped=$(for pid in "${rank_pid[@]}"; do
      awk '$6 ~ /^\/(dev\/shm|tmp)\// { print $6 }' "/proc/$pid/maps" 2>/dev/null
    done | sort -u)
    kill -KILL "${rank_pid[1]}"
    killed=$EPOCHREALTIME
    until [[ $(states "$job") =~ ^(FAILED|CANCELLED|COMPLETED|NODE_FAIL)$ ]]; do
      elapsed=$(awk -v a="$killed" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
      awk -v e="$elapsed" 'BEGIN { exit !(e > 10) }' && fail "job $job still $(states "$job") 10 s after rank 1 was killed"
      sleep 0.1
    done
    elapsed=$(awk -v a="$killed" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    [[ $(states "$job") == FAILED ]] || fail "job $job ended $(states "$job"), not FAILED"
    expect "mpiproc-primes-$job.out" "task 1: Killed"
    sleep 2
    for pid in "${rank_pid[@]}"; do
      [[ -e /proc/$pid && $(readlink "/proc/$pid/exe" 2>/dev/null) == */primes ]] && fail "rank pid $pid survived the job"
    done
    # Slurm's own (its PMIx server's files in the cluster's spool) are slurmd's to remove.
    while read -r file; do
      [[ -n $file && $file != "$cluster"/* && -e $file && $file -nt launched ]] && fail "left behind: $file"
    done <<<"$mapped"
    echo "job $job: rank 1 (pid ${rank_pid[1]}) killed; the job ended FAILED after $elapsed s, leaving nothing"
    ;;
  *) fail "unknown case $case" ;;
esac
