#!/usr/bin/env bash
# Configure and start a SLURM of several nodes on this machine: munged, a private MariaDB, slurmdbd
# (job accounting, so sacct works as on a production cluster), slurmctld and one slurmd per node
# (n1, n2, ...), with partitions cpu (default) and gpu on every node and one fake GPU (gres gpu:1)
# per node.
# Idempotent: if the cluster is already up with the same configuration it is left alone;
# otherwise (or with --restart) the daemons are stopped by PID, the spool directories are
# wiped (a drained node state would survive a restart) and everything is started afresh.
# Prints how long the start took.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
require_root
command -v slurmctld >/dev/null || die "not installed: run $here/install.sh first"

# The daemons must not inherit the caller's file descriptors: one holding a lock (as
# `flock /tmp/tomosnake-slurm.lock .ci/slurm/start.sh` does) would stay locked while they run.
for fd in /proc/$$/fd/*; do
    fd=${fd##*/}
    ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null || true
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_config "$tmp"

up() {
    local node
    for node in "${NODES[@]}"; do pid_of "$(slurmd_pid_file "$node")" slurmd >/dev/null || return 1; done
    pid_of "$MUNGED_PID" munged >/dev/null && pid_of "$SLURMCTLD_PID" slurmctld >/dev/null &&
        pid_of "$SLURMDBD_PID" slurmdbd >/dev/null && pid_of "$DB_PID" mariadbd >/dev/null && nodes_ready
}

if [[ ${1:-} != --restart ]] && up &&
    cmp -s "$tmp/slurm.conf" "$SLURM_ETC/slurm.conf" && cmp -s "$tmp/gres.conf" "$SLURM_ETC/gres.conf" &&
    cmp -s "$tmp/cgroup.conf" "$SLURM_ETC/cgroup.conf" &&
    cmp -s "$tmp/slurmdbd.conf" "$SLURM_ETC/slurmdbd.conf"; then
    echo "SLURM already running ($(node_states))"
    exit 0
fi

"$here/stop.sh"
t0=$(date +%s.%N)

mkdir -p "$SLURM_ETC" "$SLURM_LOGS"
install -m 644 "$tmp/slurm.conf" "$tmp/gres.conf" "$tmp/cgroup.conf" "$SLURM_ETC/"
install -m 600 "$tmp/slurmdbd.conf" "$SLURM_ETC/"  # slurmdbd refuses a config others can read
rm -rf "$SLURM_STATE" "$SLURM_SPOOL"
mkdir -p "$SLURM_STATE"
for node in "${NODES[@]}"; do mkdir -p "$SLURM_SPOOL/$node"; done

# munge: a key readable only by the munge user, which runs munged.
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 400 /etc/munge/munge.key
runuser -u munge -- munged
munge -n | unmunge >/dev/null || die "munge does not work"

# The accounting database, created afresh (a test cluster keeps no history across starts).
rm -rf "$DB_DIR"
mkdir -p "$DB_DIR" "$DB_RUN"
chown mysql:mysql "$DB_DIR" "$DB_RUN"
mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" --auth-root-authentication-method=socket \
    --skip-test-db >"$SLURM_LOGS/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $SLURM_LOGS)"
# A session of its own (setsid): the database outlives the process group that started it (a killed test
# run or shell took it down with it once, and every later sacct then failed).
setsid runuser -u mysql -- mariadbd --no-defaults --datadir="$DB_DIR" --socket="$DB_SOCKET" --pid-file="$DB_PID" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$SLURM_LOGS/mariadb.log" >/dev/null 2>&1 &
wait_for mariadb --no-defaults --socket="$DB_SOCKET" -e "SELECT 1" ||
    die "MariaDB did not come up in 30 s (see $SLURM_LOGS/mariadb.log)"
mariadb --no-defaults --socket="$DB_SOCKET" <<SQL
CREATE USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'127.0.0.1';
SQL
# slurmctld must find slurmdbd listening, or it starts without the cluster's TRES.
slurmdbd
wait_for sacctmgr -n list cluster || die "slurmdbd did not come up in 30 s (see $SLURM_LOGS/slurmdbd.log)"
sacctmgr -i -Q add cluster "$(sed -n 's/^ClusterName=//p' "$SLURM_ETC/slurm.conf")" >/dev/null
slurmctld
for node in "${NODES[@]}"; do slurmd -N "$node"; done

wait_for nodes_ready || true  # the states are named below
sacct -n -X >/dev/null || die "sacct does not answer (see $SLURM_LOGS/slurmdbd.log)"
nodes_in '^idle$' || die "nodes not all idle: $(node_states) (see $SLURM_LOGS/*.log)"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v n="$(node_states)" -v p="$(sinfo -h -o %P | tr '\n' ' ')" \
    'BEGIN { printf "SLURM up in %.2f s (accounting included): nodes %s, partitions: %s\n", b - a, n, p }'
