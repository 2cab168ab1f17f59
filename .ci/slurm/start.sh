#!/usr/bin/env bash
# Configure and start a one-node SLURM on this machine: munged, slurmctld, slurmd, with
# partitions cpu (default) and gpu on the same node and one fake GPU (gres gpu:1).
# Idempotent: if the cluster is already up with the same configuration it is left alone;
# otherwise (or with --restart) the daemons are stopped by PID, the spool directories are
# wiped (a drained node state would survive a restart) and everything is started afresh.
# Prints how long the start took.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
require_root
command -v slurmctld >/dev/null || die "not installed: run $here/install.sh first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_config "$tmp"

up() {
    pid_of "$MUNGED_PID" munged >/dev/null && pid_of "$SLURMCTLD_PID" slurmctld >/dev/null &&
        pid_of "$SLURMD_PID" slurmd >/dev/null && [[ $(node_state) =~ ^(idle|mix|alloc)$ ]]
}

if [[ ${1:-} != --restart ]] && up &&
    cmp -s "$tmp/slurm.conf" "$SLURM_ETC/slurm.conf" && cmp -s "$tmp/gres.conf" "$SLURM_ETC/gres.conf"; then
    echo "SLURM already running (node $NODE: $(node_state))"
    exit 0
fi

"$here/stop.sh"
t0=$(date +%s.%N)

mkdir -p "$SLURM_ETC" "$SLURM_LOGS"
install -m 644 "$tmp/slurm.conf" "$tmp/gres.conf" "$SLURM_ETC/"
rm -rf "$SLURM_STATE" "$SLURM_SPOOL"
mkdir -p "$SLURM_STATE" "$SLURM_SPOOL"

# munge: a key readable only by the munge user, which runs munged.
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 400 /etc/munge/munge.key
runuser -u munge -- munged
munge -n | unmunge >/dev/null || die "munge does not work"

slurmctld
slurmd

for ((i = 0; i < 300; i++)); do
    [[ $(node_state) =~ ^(idle|mix|alloc)$ ]] && break
    sleep 0.1
done
state=$(node_state)
[[ $state == idle ]] || die "node $NODE is '${state:-unknown}' (see $SLURM_LOGS/*.log)"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v n="$NODE" -v p="$(sinfo -h -o %P | tr '\n' ' ')" \
    'BEGIN { printf "SLURM up in %.2f s: node %s idle, partitions: %s\n", b - a, n, p }'
