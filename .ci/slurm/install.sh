#!/usr/bin/env bash
# Install Debian's SLURM (slurmctld, slurmd, slurmdbd, client tools), munge and MariaDB (the
# accounting database). Idempotent: does nothing when the binaries are already there.
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_root
missing=0
for bin in slurmctld slurmd slurmdbd sbatch sacct sacctmgr sinfo munged mariadbd mariadb-install-db; do
    command -v "$bin" >/dev/null || missing=1
done
if ((missing)); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
fi
slurmctld -V
