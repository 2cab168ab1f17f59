#!/usr/bin/env bash
# Build TomoPy (tested with tag 1.15.2) from a source checkout into a virtual environment, without conda:
#
#   .ci/tomopy.sh SRC [VENV]       # VENV defaults to .venv
#
# SRC is a TomoPy checkout (git clone https://github.com/tomopy/tomopy; git checkout 1.15.2); this
# repository carries none of TomoPy's code. TomoPy is not on PyPI, and its conda package (envs/tomopy.yaml)
# stays the facility route; this is for running the `tomopy` backend and its tests in a pip venv.
# Steps: Debian's libfftw3-dev (when missing and we are root), the C libraries with CMake/Ninja (CUDA off:
# nvcc without NPP breaks the build; MKL and OpenCV off) installed as VENV/lib/libtomo-*.so, then the
# pure-Python package with pip, then the Python requirements its wheel's metadata leaves out.
# TomoPy loads its libraries with ctypes.util.find_library, which looks in the linker's paths only;
# tomosnake's backend (`tomosnake.recon.backends.import_tomopy`) finds them in VENV/lib instead, as conda's
# Python does for its prefix, so no LD_LIBRARY_PATH is needed.
set -euo pipefail
src=$(cd "${1:?usage: .ci/tomopy.sh TOMOPY_SOURCE [VENV]}" && pwd)
venv=$(cd "${2:-.venv}" && pwd)
[[ -f $src/CMakeLists.txt && -d $src/source/tomopy ]] || { echo "$src is not a TomoPy checkout" >&2; exit 1; }
[[ -x $venv/bin/python ]] || { echo "$venv is not a virtual environment" >&2; exit 1; }

if ! dpkg -s libfftw3-dev >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then echo "TomoPy needs FFTW: apt-get install libfftw3-dev (as root)" >&2; exit 1; fi
    apt-get install -y -q libfftw3-dev >/dev/null
fi

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTOMOPY_USE_CUDA=OFF -DTOMOPY_USE_MKL=OFF \
    -DTOMOPY_USE_OPENCV=OFF -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_INSTALL_LIBDIR=lib \
    -DPYTHON_EXECUTABLE="$venv/bin/python" >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$build/build.log" || { tail -50 "$build/build.log" >&2; exit 1; }
cmake --install "$build" >/dev/null
# setuptools_scm reads the version from git; a copy without .git (e.g. an archive) needs it given
version=$(git -C "$src" describe --tags 2>/dev/null || true)
SETUPTOOLS_SCM_PRETEND_VERSION=${version:-1.15.2} "$venv/bin/pip" install -q "$src"
"$venv/bin/pip" install -q numexpr pywavelets scikit-image
"$venv/bin/python" -c "from tomosnake.recon.backends import import_tomopy; print('TomoPy', import_tomopy().__version__)"
