#!/usr/bin/env bash
# run.sh [--expect REGEX] NP PROGRAM [ARGS...]: runs PROGRAM on NP ranks spread over the test hosts
# h1, h2, h3 round-robin (4 ranks: two on h1), with mpirun itself on h1. --bind-to none: the hosts
# share this machine's cores, and each would otherwise pin its first rank to the same core. Exits 77 (ctest:
# skipped) with the reason when the hosts are not available, so that a skip never reads as a pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${MPIPROC_NETNS_PREFIX:-mpiproc}
expect=""
if [ "${1:-}" = --expect ]; then expect=$2; shift 2; fi
np=$1
shift
if [ "$(id -u)" -ne 0 ]; then echo "SKIPPED: the multihost tests need root (network namespaces)"; exit 77; fi
if ! ip netns list 2>/dev/null | grep -q "^$prefix-h3"; then
  echo "SKIPPED: the test hosts are not up (tests/multihost/hosts.sh up)"
  exit 77
fi
slots=$(( np > 4 ? (np + 2) / 3 : 1 ))
export MPIPROC_NETNS_PREFIX=$prefix OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export MPIPROC_NETNS="$prefix-h1"
out=$(ip netns exec "$prefix-h1" unshare --uts /bin/sh -c 'hostname h1 && exec "$@"' sh \
  mpirun --mca plm_rsh_agent "$here/agent" --map-by node --bind-to none --host "h1:$((slots + 1)),h2:$slots,h3:$slots" -np "$np" "$@" 2>&1) || {
  rc=$?
  printf '%s\n' "$out"
  exit "$rc"
}
printf '%s\n' "$out"
if [ -n "$expect" ] && ! grep -Eq -- "$expect" <<<"$out"; then
  echo "output does not match: $expect"
  exit 1
fi
