#!/usr/bin/env bash
# Asserts that the e2e harness left the host as it found it:
#   - no process it started is alive (PIDs + start times recorded in
#     $E2E_WORK/logs/pids.tsv), no containerd shim of its socket, no process
#     in a kubepods cgroup, no process whose command line names $E2E_WORK;
#   - nothing mounted at or below $E2E_WORK;
#   - no kubepods cgroup in any hierarchy;
#   - no KUBE-* iptables/ip6tables chain;
#   - no listener on the ports the harness uses or saw its processes use;
#   - host paths the kubelet/containerd/CNI create (/var/lib/kubelet, /var/lib/cni,
#     /var/log/containers, /run/containerd, ...) absent unless present before;
#   - the kubelet's sysctls back to their values before the run.
# Exit status 0 when clean; otherwise prints every finding and exits 1.
#   usage: verify-clean.sh        (E2E_WORK as for run.sh)
set -uo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

fail=0
bad() { echo "verify-clean: $*" >&2; fail=1; }

# processes
if [ -f "$W/logs/pids.tsv" ]; then
  while IFS=$'\t' read -r name pid st; do
    [ -n "$pid" ] || continue
    if [ "$(proc_starttime "$pid" 2>/dev/null)" = "$st" ]; then bad "process $name (pid $pid) still runs"; fi
  done <"$W/logs/pids.tsv"
fi
for p in $(our_shim_pids); do bad "containerd shim of $SOCK still runs: pid $p"; done
for p in $(kubepods_pids); do bad "process in a kubepods cgroup: pid $p ($(cat /proc/$p/comm 2>/dev/null))"; done
for f in $(grep -lzsF -- "$W/" /proc/[0-9]*/cmdline 2>/dev/null); do
  p=${f#/proc/}; p=${p%/cmdline}
  [ "$p" = $$ ] && continue
  cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
  bad "process $p names $W: ${cmd:0:160}"
done

# mounts
while read -r m; do [ -n "$m" ] && bad "still mounted: $m"; done < <(mounts_under_work)

# cgroups
for root in $(cgroup_roots); do
  [ -e "$root/kubepods" ] && bad "cgroup left: $root/kubepods"
done

# iptables
while read -r tool tbl chain; do
  [ -n "$chain" ] && bad "$tool chain left: -t $tbl $chain"
done < <(kube_chains)

# listeners
ports=("${HARNESS_PORTS[@]}")
[ -f "$W/logs/ports.txt" ] && mapfile -t -O ${#ports[@]} ports <"$W/logs/ports.txt"
for p in $(printf '%s\n' "${ports[@]}" | sort -un); do
  listening_on "$p" && bad "something listens on port $p: $(ss -Htlnp "sport = :$p" | head -1)"
done

# host paths and sysctls, compared with the snapshot taken before the run
if [ -f "$W/logs/host-before.txt" ]; then
  while read -r kind a b; do
    case $kind in
    path) [ "$b" = absent ] && [ -e "$a" ] && bad "created on the host and left: $a" ;;
    sysctl) v=$(cat "/proc/sys/$a" 2>/dev/null); [ "$v" = "$b" ] || bad "sysctl $a is '$v', was '$b'" ;;
    esac
  done <"$W/logs/host-before.txt"
else
  echo "verify-clean: no snapshot in $W/logs/host-before.txt: host paths and sysctls not compared" >&2
fi

if [ $fail = 0 ]; then
  echo "verify-clean: OK (no process, mount, kubepods cgroup, KUBE-* chain, listener or host path left)"
fi
exit $fail
