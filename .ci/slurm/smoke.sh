#!/usr/bin/env bash
# Submit trivial jobs to the running test cluster and check that each one completes:
# one per partition, and on gpu one with --gres=gpu:1 and one with --gpus=1 (the form the
# executor plugin emits for a rule with resources gpu=1), both of which must see a GPU.
# Job states come from the accounting database (sacct), as the executor plugin reads them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

submit() {   # submit NAME SBATCH-ARGS...: print the job id
    local name=$1
    shift
    # shellcheck disable=SC2016  # expanded by the job, not here
    sbatch --parsable -J "smoke-$name" -o "$out/$name.out" -t 1 "$@" \
        --wrap 'echo "partition=$SLURM_JOB_PARTITION gpus=${CUDA_VISIBLE_DEVICES:-none}"'
}

declare -A ids
t0=$(date +%s.%N)
ids[cpu]=$(submit cpu -p cpu)
ids[gpu]=$(submit gpu -p gpu)
ids[gres]=$(submit gres -p gpu --gres=gpu:1)
ids[gpus]=$(submit gpus -p gpu --gpus=1)

for name in "${!ids[@]}"; do
    for ((i = 0; i < 300; i++)); do
        state=$(sacct -n -X -P -j "${ids[$name]}" -o State)
        [[ $state =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL)$ ]] && break
        sleep 0.1
    done
    [[ $state == COMPLETED ]] || die "job $name (${ids[$name]}) ended $state"
done
t1=$(date +%s.%N)

grep -qx 'partition=cpu gpus=none' "$out/cpu.out" || die "cpu: $(cat "$out/cpu.out")"
grep -qx 'partition=gpu gpus=none' "$out/gpu.out" || die "gpu: $(cat "$out/gpu.out")"
grep -qx 'partition=gpu gpus=0' "$out/gres.out" || die "gres: $(cat "$out/gres.out")"
grep -qx 'partition=gpu gpus=0' "$out/gpus.out" || die "gpus: $(cat "$out/gpus.out")"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "smoke: 4 jobs completed in %.2f s\n", b - a }'
cat "$out"/*.out
