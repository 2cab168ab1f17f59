#!/usr/bin/env bash
# Stop every node's slurmd, slurmctld, slurmdbd, the accounting MariaDB and munged by the PIDs in their pid files (never by name).
# Idempotent: a daemon that is not running is skipped.
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_root

stop_one() {   # stop_one PIDFILE COMM
    local pid i
    pid=$(pid_of "$1" "$2") || return 0
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "stopped $2 ($pid)"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    echo "killed $2 ($pid) after 10 s"
}

for node in "${NODES[@]}"; do stop_one "$(slurmd_pid_file "$node")" slurmd; done
stop_one "$SLURMCTLD_PID" slurmctld
stop_one "$SLURMDBD_PID" slurmdbd
stop_one "$DB_PID" mariadbd
stop_one "$MUNGED_PID" munged
