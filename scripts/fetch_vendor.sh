#!/usr/bin/env bash
# Fill vendor/ (ignored by git) with what scripts/gpu_check.sh installs on a GPU machine that has no
# network: pycuda's sdist (built there), the pure-Python packages qgen and pycuda need, adseq 0.9.4
# for the peers, and cffi/siphash24 wheels for the GPU machine's Python (3.12 unless PYVER says).
# Run it on a machine with access to the package index, then carry vendor/ to the GPU machine:
#
#   bash scripts/fetch_vendor.sh            # PYVER=3.12 by default
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
PIP=(${PYTHON:-python3} -m pip --disable-pip-version-check)
mkdir -p vendor
"${PIP[@]}" download -q --no-deps --no-binary=pycuda -d vendor pycuda
"${PIP[@]}" download -q --no-deps -d vendor pytools platformdirs mako lark pycparser adseq==0.9.4
"${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d vendor siphash24 cffi
ls vendor
