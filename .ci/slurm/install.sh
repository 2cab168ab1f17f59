#!/usr/bin/env bash
# Install Debian's SLURM (slurmctld, slurmd, client tools) and munge. Idempotent: does
# nothing when the binaries are already there. No database: see README.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_root
missing=0
for bin in slurmctld slurmd sbatch squeue sinfo munged; do
    command -v "$bin" >/dev/null || missing=1
done
if ((missing)); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
slurmctld -V
