#!/usr/bin/env bash
# hosts.sh up [K] | down: K test "hosts" h1..hK on this machine, each a network namespace with its
# own address (10.201.0.i), joined by a bridge that lives in a namespace of its own, so nothing is
# added to the root namespace. Host names resolve inside them through /etc/netns/NAME/hosts.
# Without root (or without `ip netns`) it does nothing: the tests then report themselves skipped.
set -euo pipefail
prefix=${MPIPROC_NETNS_PREFIX:-mpiproc}
net=10.201.0

teardown() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf /etc/netns/"$prefix"-*
}

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
  echo "multihost: needs root and iproute2; the multihost tests will be skipped"
  exit 0
fi

case "${1:-}" in
  down) teardown ;;
  up)
    k=${2:-3}
    teardown  # whatever an interrupted run left behind
    trap 'teardown' ERR
    ip netns add "$prefix-switch"
    ip -n "$prefix-switch" link add br0 type bridge
    ip -n "$prefix-switch" link set br0 up
    hosts="127.0.0.1 localhost"
    for i in $(seq 1 "$k"); do hosts+=$'\n'"$net.$i h$i"; done
    for i in $(seq 1 "$k"); do
      ns=$prefix-h$i
      ip netns add "$ns"
      ip -n "$prefix-switch" link add "port$i" type veth peer name eth0 netns "$ns"
      ip -n "$prefix-switch" link set "port$i" master br0 up
      ip -n "$ns" addr add "$net.$i/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" link set lo up
      mkdir -p "/etc/netns/$ns"
      printf '%s\n' "$hosts" >"/etc/netns/$ns/hosts"
    done
    echo "multihost: hosts h1..h$k up ($net.1-$k)"
    ;;
  *) echo "usage: hosts.sh up [K] | down" >&2; exit 2 ;;
esac
