#!/usr/bin/env bash
# cluster.sh up DIR | down DIR | status DIR: a private one-node Slurm cluster (slurmctld, slurmd and
# munged from Debian's slurm-wlm and munge) whose every file lives under DIR: its own slurm.conf,
# munge key, sockets, spool, state, pid and log files. Nothing is written to /etc, and the daemons
# listen on ports found free at start, so it runs beside a system Slurm or another such cluster.
#
#   up      stops whatever a crashed run left in DIR, starts munged, slurmctld and slurmd, and waits
#           until the node is idle; writes DIR/env, which clients source (SLURM_CONF). Exit 77 (the
#           tests' "skipped") with the reason when Slurm cannot start here: not root, or not
#           installed.
#   down    stops the daemons by the PIDs they recorded (and waits until they are gone), then
#           removes DIR. Exit 0 when there was nothing to stop.
#   status  exit 0 when the cluster in DIR is up.
#
# Root is needed: slurmd starts job steps as the submitting user and slurmctld/slurmd run as
# SlurmUser=root here, so that the cluster needs no user or directory of its own outside DIR.
set -euo pipefail

usage() { echo "usage: cluster.sh up|down|status DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
dir=$2
[[ $dir == /* ]] || dir=$PWD/$dir
# Unix socket paths are limited to 107 bytes; slurmd puts one per job step in its spool.
[[ ${#dir} -le 60 ]] || { echo "cluster.sh: DIR must be at most 60 characters: $dir" >&2; exit 2; }

skip() { echo "SKIPPED: $*"; exit 77; }

# Whether a process runs (a zombie, dead but not yet collected by its parent, does not).
alive() {
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# A daemon from DIR's pid file, if it still runs that program.
running_pid() {
  local file=$1 program=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$program" ]] || return 1  # (Debian's binaries are links)
  echo "$pid"
}

stop_daemon() {
  local file=$1 program=$2 pid i
  pid=$(running_pid "$file" "$program") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do  # 10 s, then SIGKILL
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "cluster.sh: $program ($pid) did not stop on SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "cluster.sh: $program ($pid) is still running" >&2
  return 1
}

# The process and every process under it, children first.
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do descendants "$child"; done
  echo "$1"
}

# Jobs end while the controller still runs (slurmd's exit would leave their steps running).
cancel_jobs() {
  local jobs i
  running_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null || return 0
  jobs=$(SLURM_CONF=$dir/slurm.conf squeue -h -o %A 2>/dev/null | sort -u || true)
  [[ -n $jobs ]] || return 0
  # shellcheck disable=SC2086
  SLURM_CONF=$dir/slurm.conf scancel --quiet $jobs 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do  # 15 s: KillWait is 5
    [[ -z $(SLURM_CONF=$dir/slurm.conf squeue -h -t R,CG -o %A 2>/dev/null || true) ]] && return 0
    sleep 0.1
  done
}

# What is left of this cluster's processes: job steps that outlived slurmd (slurmstepd and all it
# started; their environment names this cluster's slurm.conf) and daemons whose pid file is gone
# (their command line names DIR).
kill_leftovers() {
  local pid pids=()
  for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
    tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "SLURM_CONF=$dir/slurm.conf" &&
      mapfile -t -O "${#pids[@]}" pids < <(descendants "$pid")
  done
  for pid in $(pgrep -x munged; pgrep -x slurmctld; pgrep -x slurmd); do
    alive "$pid" && grep -qF -- "$dir/" "/proc/$pid/cmdline" 2>/dev/null && pids+=("$pid")
  done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  echo "cluster.sh: killing what a previous run left: ${pids[*]}" >&2
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

down() {
  cancel_jobs
  # slurmd first, then the controller; munge last (both use it).
  stop_daemon "$dir/run/slurmd.pid" slurmd
  stop_daemon "$dir/run/slurmctld.pid" slurmctld
  stop_daemon "$dir/run/munged.pid" munged
  kill_leftovers
  rm -rf "$dir"
}

status() {
  [[ -f $dir/env ]] || return 1
  running_pid "$dir/run/munged.pid" munged >/dev/null &&
    running_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null &&
    running_pid "$dir/run/slurmd.pid" slurmd >/dev/null
}

# A TCP port nobody listens on, from `base` up, other than `not`.
free_port() {
  local port=$1 not=${2:-0} used
  used=$(ss -Htln 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}')
  while grep -qx "$port" <<<"$used" || [[ $port -eq $not ]]; do port=$((port + 1)); done
  echo "$port"
}

show_logs() {
  local log
  for log in "$dir"/log/*.log; do
    [[ -f $log ]] || continue
    echo "--- $log (last lines)"
    tail -n 20 "$log"
  done
}

up() {
  [[ $(id -u) -eq 0 ]] || skip "a private Slurm cluster needs root (slurmd starts jobs as their user)"
  local program
  for program in munged mungekey slurmctld slurmd sbatch srun scontrol sinfo ss; do
    command -v "$program" >/dev/null ||
      PATH=$PATH:/usr/sbin:/sbin command -v "$program" >/dev/null ||
      skip "$program is not installed (scripts/deps installs slurm-wlm and munge)"
  done
  export PATH=$PATH:/usr/sbin:/sbin

  down  # whatever a crashed run left behind
  mkdir -p "$dir"/{munge,run,log,ctld,spool}
  chmod 0700 "$dir"/ctld "$dir"/spool
  # munged refuses a socket directory that others cannot reach, and key or log directories that
  # others can write.
  chmod 0755 "$dir" "$dir"/munge "$dir"/run "$dir"/log

  local host ctld_port slurmd_port memory
  host=$(hostname -s)
  ctld_port=$(free_port 16817)
  slurmd_port=$(free_port $((ctld_port + 1)) "$ctld_port")
  memory=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)

  mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null
  chmod 0600 "$dir/munge/munge.key"
  munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" --force ||
    { show_logs; skip "munged did not start"; }

  cat >"$dir/slurm.conf" <<EOF
# A private one-node cluster for mpiproc's tests (tests/slurm/cluster.sh); everything under $dir.
ClusterName=mpiproc
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Requeued jobs wait cred_expire before they start again: short, so requeues take seconds.
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
# Jobs choose their MPI plugin: srun --mpi=pmix (Debian's Open MPI works with pmix, not pmi2).
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# Batch jobs start at once, and pending ones (a requeued job) are looked at every 2 s.
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Four CPUs on any machine (this one may have two), so that 4-task jobs run here.
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
KillWait=5
# Finished jobs stay visible to scontrol and squeue for this long (there is no accounting).
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" >"$dir/env"
  export SLURM_CONF=$dir/slurm.conf

  slurmctld -c -f "$SLURM_CONF" || { show_logs; down; skip "slurmctld did not start"; }
  slurmd -f "$SLURM_CONF" || { show_logs; down; skip "slurmd did not start"; }

  local i state=
  for ((i = 0; i < 300; i++)); do  # 30 s
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.1
  done
  if [[ $state != idle ]]; then
    show_logs
    down
    skip "the node did not become idle within 30 s (state '${state:-unknown}')"
  fi
  echo "slurm: one-node cluster up in $dir (node $host idle, CPUs=4, ports $ctld_port/$slurmd_port)"
}

case $action in
  up) up ;;
  down) down ;;
  status) status ;;
  *) usage ;;
esac
