#!/usr/bin/env bash
# kill_rank.sh MODE VICTIM NP PROGRAM LAUNCHER...: runs PROGRAM (tests/kill_target) on NP ranks
# with LAUNCHER (mpirun -np NP ..., or tests/multihost/run.sh NP), waits until every rank is in
# place (blocked in what MODE names), SIGKILLs rank VICTIM (a number, or "last"), and checks what a
# user must be able to count on:
#   - the launcher exits non-zero within 10 s of the kill;
#   - its output names the lost rank ("process rank V with PID P ... exited on signal 9");
#   - no process of the job survives (ranks, and the orted daemons of the other hosts);
#   - no file of ours is left in /dev/shm or /tmp: none of the files the ranks had open or mapped
#     there before the kill but Open MPI's own, which it counts (vader_segment.*, its session
#     folder); no window segment of the job (osc_sm.*); no new name with the job's id or a pid.
# Prints one line "RESULT mode=... victim=... seconds=... message=... openmpi_left=..." for the
# record. Exit status 0 if all holds, 1 if not, 77 (ctest: skipped) if the launcher skipped.
set -uo pipefail
mode=$1 victim=$2 np=$3 program=$4
shift 4
launcher=("$@")
[[ $victim == last ]] && victim=$((np - 1))
limit=10       # seconds from the kill to the launcher's exit
give_up=30     # after this, the job counts as hung: kill it all and fail
grace=2        # seconds after the launcher's exit for the last processes to go

dir=$(mktemp -d "$PWD/kill_rank.$mode.XXXXXX")
job_pids=()
cleanup() {
  for p in "${job_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [[ -n ${launcher_pid:-} ]] && kill -KILL "$launcher_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
failures=()
fail() { failures+=("$*"); echo "FAIL: $*"; }
# Microseconds, without forking (the pids of a busy machine wrap around quickly).
now_us=0
tick() { now_us=${EPOCHREALTIME/./}; now_us=$((10#$now_us)); }

# What is in /dev/shm and /tmp now (other jobs may add to it meanwhile: only new names that carry
# this job's id or one of its pids are counted as the job's).
listing() { find /dev/shm /tmp -mindepth 1 -maxdepth 1 2>/dev/null | sort; }
before_names=$(listing)
# Files older than this were not made by the job (the program itself, when the build is in /tmp).
touch "$dir/launched"

"${launcher[@]}" "$program" "$mode" "$dir" >"$dir/out" 2>&1 &
launcher_pid=$!

# Every rank in place: its pid file written (then a second for the waiters to fall asleep).
tick
start=$now_us
while :; do
  n=$(find "$dir" -maxdepth 1 -name 'rank-*.pid' | wc -l)
  [[ $n -ge $np ]] && break
  if ! kill -0 "$launcher_pid" 2>/dev/null; then
    wait "$launcher_pid"
    rc=$?
    cat "$dir/out"
    [[ $rc -eq 77 ]] && exit 77
    echo "FAIL: the job ended (status $rc) before every rank was in place"
    exit 1
  fi
  tick
  if ((now_us - start > 60000000)); then
    cat "$dir/out"
    echo "FAIL: only $n of $np ranks in place after 60 s"
    exit 1
  fi
  sleep 0.05
done
sleep 1

declare -A pid_of parent_of
for r in $(seq 0 $((np - 1))); do
  read -r pid parent <"$dir/rank-$r.pid"
  pid_of[$r]=$pid
  parent_of[$r]=$parent
  job_pids+=("$pid")
done
# The daemons that started ranks on other hosts (orted); mpirun itself is the launcher's business.
daemons=()
for parent in $(printf '%s\n' "${parent_of[@]}" | sort -u); do
  grep -qa orted "/proc/$parent/cmdline" 2>/dev/null && daemons+=("$parent") && job_pids+=("$parent")
done
# The files in /dev/shm and /tmp that the ranks have open or mapped now ("(deleted)": already
# unlinked, as Open MPI does with a shared window's file once every rank has mapped it).
mapped=$(for r in "${!pid_of[@]}"; do
  awk '$6 != "" { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }' "/proc/${pid_of[$r]}/maps" 2>/dev/null
  find "/proc/${pid_of[$r]}/fd" -mindepth 1 -printf '%l\n' 2>/dev/null
done | grep -E '^/(dev/shm|tmp)/' | sort -u)
echo "files the ranks have open or mapped in /dev/shm and /tmp:"
sed 's/^/  /' <<<"$mapped"
jobid=$(sed -n 's|^/dev/shm/vader_segment\.[^.]*\.[0-9]*\.\([0-9a-f]*\)\..*|\1|p' <<<"$mapped" | head -1)

echo "ranks: ${pid_of[*]}; daemons of other hosts: ${daemons[*]:-none}"
victim_pid=${pid_of[$victim]}
tick
killed_at=$now_us
kill -KILL "$victim_pid"
while kill -0 "$launcher_pid" 2>/dev/null; do
  tick
  ((now_us - killed_at > give_up * 1000000)) && break
  sleep 0.02
done
tick
took=$((now_us - killed_at))
seconds=$(printf '%d.%02d' $((took / 1000000)) $((took % 1000000 / 10000)))
if kill -0 "$launcher_pid" 2>/dev/null; then
  hung=1
  ps -o pid,stat,wchan:20,cmd -p "$(IFS=,; echo "${job_pids[*]}")" 2>/dev/null
  kill -KILL "$launcher_pid"
fi
wait "$launcher_pid"
rc=$?
launcher_pid=
cat "$dir/out"

echo "mode $mode, np $np, rank $victim (pid $victim_pid) killed: launcher exited with status $rc after $seconds s"
[[ -n ${hung:-} ]] && fail "the job was still running $give_up s after the kill"
[[ $rc -ne 0 ]] || fail "the launcher exited with status 0"
((took <= limit * 1000000)) || fail "the job took $seconds s to end (limit $limit s)"
message=no
if grep -Eq "process rank $victim with PID [0-9]+ on node [^ ]+ exited on signal 9" "$dir/out"; then
  message=yes
else
  fail "the output does not name rank $victim as killed by signal 9"
fi

# Survivors: the ranks and daemons (by pid, still running the same program: pids wrap around
# quickly on a busy machine), and anything still running with this test's folder in its
# arguments, given a moment after the launcher's exit.
survivors=()
alive() {
  survivors=()
  local p state
  for p in "${job_pids[@]}"; do
    [[ -r /proc/$p/cmdline ]] || continue
    grep -qaF -e orted -e "$program" "/proc/$p/cmdline" 2>/dev/null || continue
    read -r _ _ state _ <"/proc/$p/stat" 2>/dev/null
    [[ $state == Z ]] || survivors+=("$p")
  done
  for p in $(pgrep -f -- "$dir"); do survivors+=("$p"); done
  ((${#survivors[@]} > 0))
}
tick
deadline=$((now_us + grace * 1000000))
while alive && ((now_us < deadline)); do sleep 0.05; tick; done
if alive; then
  ps -o pid,ppid,stat,wchan:24,cmd -p "$(IFS=,; echo "${survivors[*]}")"
  fail "processes of the job survived: ${survivors[*]}"
fi

# Files. Open MPI's own (its shared-memory transport's vader_segment.*, its session folder) are
# counted, not failed; anything else the ranks had mapped, a window segment of this job, or a
# new name with the job's id or a rank's pid in it is ours.
openmpi_left=0
ours_left=()
while read -r file; do
  [[ -z $file || $file == *" (deleted)" || ! -e $file ]] && continue
  [[ $file -nt $dir/launched ]] || continue
  # The checkpoint folder is the user's, meant to stay for the resume (listed below); a rank
  # holds it open for a moment to make a rename durable.
  [[ $file == "$dir/ck" ]] && continue
  case $file in
    /dev/shm/vader_segment.*) openmpi_left=$((openmpi_left + 1)); echo "left by Open MPI: $file" ;;
    /tmp/ompi.*) openmpi_left=$((openmpi_left + 1)); echo "left by Open MPI: $file" ;;
    *) ours_left+=("$file") ;;
  esac
done <<<"$mapped"
if [[ -n $jobid ]]; then
  for file in /dev/shm/vader_segment.*."$jobid".*; do
    [[ -e $file ]] && ! grep -qxF "$file" <<<"$mapped" && openmpi_left=$((openmpi_left + 1)) &&
      echo "left by Open MPI: $file"
  done
  for file in /dev/shm/osc_sm.*."$jobid".* /tmp/osc_sm.*."$jobid".*; do [[ -e $file ]] && ours_left+=("$file"); done
fi
# Open MPI's ids: the job id in hexadecimal in file names, in decimal in its environment.
ids=("${pid_of[@]}")
[[ -n $jobid ]] && ids+=("$jobid" "$((16#$jobid))")
while read -r file; do
  [[ -z $file || $file == "$dir" ]] && continue
  name=${file##*/}
  for id in "${ids[@]}"; do
    if [[ $name =~ (^|[^0-9a-f])$id([^0-9a-f]|$) ]]; then
      case $name in
        vader_segment.*|ompi.*) ;;  # counted above
        *) ours_left+=("$file") ;;
      esac
      break
    fi
  done
done < <(comm -13 <(echo "$before_names") <(listing))
((${#ours_left[@]} == 0)) || fail "files of ours left behind: $(printf '%s\n' "${ours_left[@]}" | sort -u | tr '\n' ' ')"
if [[ -d $dir/ck ]]; then
  echo "checkpoint folder after the kill: $(ls "$dir/ck" | tr '\n' ' ')"
fi

echo "RESULT mode=$mode victim=$victim np=$np seconds=$seconds status=$rc message=$message openmpi_left=$openmpi_left jobid=${jobid:-?}"
if ((${#failures[@]})); then exit 1; fi
echo "PASSED"
