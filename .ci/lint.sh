#!/usr/bin/env bash
# The static checks the field's workflows run, before the tests; any finding fails (exit 1):
# ruff (pyproject's [tool.ruff]), mypy over the package and the job scripts ([tool.mypy]: a missing name, even
# in a function-level import, or a wrong call), snakefmt --check ([tool.snakefmt]) and snakemake --lint on the
# workflow with a minimal config (a generated 32-projection scan, so the parse-time checks pass).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cd "${VENV:-.venv}/bin" && pwd)
"$bin/ruff" check --no-cache .
"$bin/mypy" --no-incremental
"$bin/snakefmt" --check Snakefile rules
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/python" -c "import sys; from tomosnake.phantom import PhantomSpec, write_scan
write_scan(sys.argv[1], PhantomSpec(n_proj=32, n_rows=8, n_cols=32))" "$tmp/scan.h5"
snakefile=$("$bin/python" -c "from tomosnake.workflow import SNAKEFILE; print(SNAKEFILE)")
(cd "$tmp" && "$bin/snakemake" --snakefile "$snakefile" --lint --config input="$tmp/scan.h5" outdir="$tmp/out")
