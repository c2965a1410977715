#!/usr/bin/env bash
# Installs the peers the benchmarks compare qgen against (DESIGN.md §8, "Notes on the peers").
#
#   main venv (.venv):     adseq 0.9.4 + JAX (CPU) and nest-simulator 3.10, through the
#                          project's `bench` extra;
#   .venv-brian2:          brian2 (2.9.x on Python 3.11) with numpy < 2.3, in its own virtual
#                          environment because the main venv has numpy >= 2.3. Brian2's
#                          cpp_standalone device compiles C++ with the system g++.
#
# Run from anywhere:  bash benchmarks/setup_peers.sh
# Environment:  PYTHON (default python3) creates the venvs; SKIP_MAIN=1 skips the main venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"

if [ "${SKIP_MAIN:-0}" != "1" ]; then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[bench]'
fi

[ -x .venv-brian2/bin/python ] || "$PYTHON" -m venv .venv-brian2
.venv-brian2/bin/python -m pip install -q --upgrade pip
.venv-brian2/bin/python -m pip install -q 'brian2>=2.9,<3' 'numpy<2.3'

command -v g++ >/dev/null || { echo "setup_peers: g++ not found (Brian2 cpp_standalone needs it)" >&2; exit 1; }

echo "peers installed:"
.venv/bin/python -c "import adseq, jax, nest; print('  adseq', adseq.__version__ if hasattr(adseq, '__version__') else '0.9.4', '| jax', jax.__version__, '| nest', nest.__version__)" 2>&1 | grep -v '^\s*$' | tail -n 1
.venv-brian2/bin/python -c "import brian2, numpy; print('  brian2', brian2.__version__, '| numpy', numpy.__version__)"
