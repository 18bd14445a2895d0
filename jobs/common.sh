# Sourced by every script in jobs/ (not a job itself): where the programs are, how to start the
# ranks, and the lines every log starts with. Variables a user may set when submitting (sbatch
# passes the submitting shell's environment on to the job):
#   MPIPROC_JOBS  this folder, where a job cannot find it beside the script it was submitted as
#   MPIPROC_BIN   the folder of the programs (default: build/bin of the repository that holds
#                 this folder, i.e. the build next to the scripts)
#   LAUNCH        srun or mpirun (default: srun when its pmix plugin is there, else mpirun)
# It defines $bin, the array launcher (the command that starts the ranks: add -n N for fewer
# tasks than the allocation) and the function log_header.

jobs_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
bin=${MPIPROC_BIN:-$jobs_dir/../build/bin}
if [[ ! -x $bin/primes ]]; then
  echo "error: no mpiproc programs in $bin: build them (scripts/build) or set MPIPROC_BIN" >&2
  exit 1
fi
bin=$(cd "$bin" && pwd -P)

# srun starts the ranks through PMIx and, with --kill-on-bad-exit, ends the step as soon as one rank
# fails instead of leaving the others waiting for it. mpirun (Open MPI's) reads the allocation
# from Slurm itself, so it needs no host list.
if [[ -z ${LAUNCH:-} ]]; then
  LAUNCH=mpirun
  if [[ -n ${SLURM_JOB_ID:-} ]] && srun --mpi=list 2>&1 | grep -w pmix >/dev/null; then LAUNCH=srun; fi
fi
case $LAUNCH in
  srun) launcher=(srun --mpi=pmix --kill-on-bad-exit=1) ;;
  mpirun)
    launcher=(mpirun)
    [[ $(id -u) -eq 0 ]] && launcher+=(--allow-run-as-root)
    ;;
  *) echo "error: LAUNCH must be srun or mpirun, not '$LAUNCH'" >&2; exit 2 ;;
esac

# Who ran what where: the first lines of the log (again after every requeue).
log_header() {
  local commit
  commit=$(git -C "$jobs_dir" describe --always --dirty 2>/dev/null || echo unknown)
  echo "== $(date -Is) job ${SLURM_JOB_ID:-none}" \
    "${SLURM_ARRAY_TASK_ID:+(array task $SLURM_ARRAY_TASK_ID) }restart ${SLURM_RESTART_COUNT:-0} on $(hostname -s)"
  echo "   allocation: ${SLURM_JOB_NUM_NODES:-1} node(s) ${SLURM_JOB_NODELIST:-$(hostname -s)}," \
    "${SLURM_NTASKS:-?} task(s), partition ${SLURM_JOB_PARTITION:-none}"
  echo "   mpiproc: commit $commit, programs in $bin"
  echo "   launcher: ${launcher[*]}; $(mpirun --version 2>/dev/null | head -1 || echo 'no mpirun')"
}
