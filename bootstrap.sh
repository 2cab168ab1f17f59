#!/usr/bin/env bash
# Set up tomosnake on a fresh Debian machine (Python 3.11), then run the demo or the test suite.
#   bash bootstrap.sh demo   # install, generate a phantom scan, reconstruct it end to end (local executor)
#   bash bootstrap.sh test   # install, run the static checks, start a test SLURM of three nodes (as root), run the tests
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-demo}

apt_install() {  # apt_install CMD PKG ...: install PKG where CMD is missing (CMD "" = always)
    local missing=()
    while [ $# -gt 0 ]; do { [ -n "$1" ] && command -v "$1" >/dev/null 2>&1; } || missing+=("$2"); shift 2; done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install "" python3-venv; python3 -m venv .venv; }
fi
.venv/bin/python -m pip install -q --upgrade pip
install_profiles() {  # so that `snakemake --profile maxiv` finds the profiles by name (~/.config/snakemake)
    .venv/bin/python -m tomosnake.profiles
}
case "$what" in
    demo)
        .venv/bin/python -m pip install -q -e '.[output]'
        install_profiles
        exec .venv/bin/tomosnake demo
        ;;
    test)
        apt_install pdftoppm poppler-utils
        .venv/bin/python -m pip install -q -e '.[test]'
        install_profiles
        bash .ci/lint.sh  # ruff, snakefmt --check, snakemake --lint: a finding fails the run
        bash .ci/slurm/install.sh && bash .ci/slurm/start.sh
        # Two workers, a test file each: the SLURM tests mostly wait for the executor's status polling,
        # so the rest of the suite runs meanwhile (12 min -> 8 min on 2 cores).
        exec .venv/bin/python -m pytest -ra -n 2 --dist loadfile "${@:2}"
        ;;
    *) echo "usage: bash bootstrap.sh demo|test" >&2; exit 2 ;;
esac
