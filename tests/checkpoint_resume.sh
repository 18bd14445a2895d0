#!/usr/bin/env bash
# checkpoint_resume.sh HOW NP1 NP2 MPIEXEC NPFLAG [MPIEXEC_FLAGS...] -- PROGRAM [ARGS...]
#
# A program run with --checkpoint stopped partway, then run again on another rank count with the
# same file: its answer must be the uninterrupted run's, and the second run must compute only what
# the first left (0 < computed < N), and a third run nothing. HOW stops the first run:
#   term  SIGTERM to the launcher (mpirun sends it on to every rank, then kills them)
#   usr1  SIGUSR1 to the launcher (forwarded; the ranks save and exit with status 75)
#   kill  SIGKILL to one rank (the launcher then stops the others with SIGTERM)
set -uo pipefail
how=$1 np1=$2 np2=$3 mpiexec=$4 npflag=$5
shift 5
flags=()
while [[ $# -gt 0 && $1 != -- ]]; do flags+=("$1"); shift; done
shift
program=("$@")

dir=$(mktemp -d /tmp/mpiproc_resume_XXXXXX)
trap 'rm -rf "$dir"' EXIT
file=$dir/run.ckpt
launch() { local np=$1; shift; "$mpiexec" "$npflag" "$np" "${flags[@]}" "${program[@]}" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# Timed at the first run's rank count, so that the signal lands partway through that run.
start=$(date +%s.%N)
expected=$(launch "$np1" | head -1) || fail "the uninterrupted run failed"
took=$(echo "$(date +%s.%N) - $start" | bc)
echo "uninterrupted: $expected ($took s)"

# The launcher itself in the background (not a subshell around it), so that the signals reach it.
# On a loaded machine a run may still end before the signal: then try again, signalling sooner.
for fraction in 3 6 12; do
  rm -rf "$file" "$file".*
  "$mpiexec" "$npflag" "$np1" "${flags[@]}" "${program[@]}" --checkpoint "$file" >"$dir/first.out" 2>&1 &
  launcher=$!
  sleep "$(echo "$took / $fraction" | bc -l)"
  case $how in
    term) kill -TERM "$launcher" ;;
    usr1) kill -USR1 "$launcher" ;;
    kill) rank=$(pgrep -P "$launcher" | head -1); [[ -n $rank ]] && kill -KILL "$rank" ;;
    *) fail "unknown way to stop: $how" ;;
  esac
  wait "$launcher"
  rc=$?
  cat "$dir/first.out"
  echo "first run (np $np1, stopped by $how after 1/$fraction of $took s): exit status $rc"
  [[ $rc -ne 0 ]] && break
done
[[ $rc -ne 0 ]] || fail "the first run was not stopped (it ended before the signal, three times)"
if [[ $how == usr1 ]]; then
  [[ $rc -eq 75 ]] || fail "expected exit status 75 after SIGUSR1"
fi
if [[ $how != kill ]]; then
  grep -q "interrupted by SIG" "$dir/first.out" || fail "no interruption reported"
fi
ls "$dir"

second=$(launch "$np2" --checkpoint "$file") || fail "the resumed run failed: $second"
echo "$second"
answer=$(echo "$second" | head -1)
[[ $answer == "$expected" ]] || fail "resumed answer '$answer' differs from '$expected'"
computed=$(echo "$second" | sed -n 's/.*: computed \([0-9]*\) of \([0-9]*\) items.*/\1 \2/p')
read -r done total <<<"$computed"
[[ -n $done && $done -gt 0 && $done -lt $total ]] || fail "the resumed run computed $done of $total items"

third=$(launch "$np1" --checkpoint "$file") || fail "the third run failed"
echo "$third" | grep -q "computed 0 of" || fail "a complete checkpoint was computed again: $third"
[[ $(echo "$third" | head -1) == "$expected" ]] || fail "the third run's answer differs"
echo "resumed at np $np2: same answer, computed $done of $total items"
