#!/usr/bin/env bash
# Installs the pinned Python tools the checks use (PyPI), unless already present.
set -euo pipefail
here=$(dirname "$0")
if ! python3 -c 'import duckdb, sys; sys.exit(duckdb.__version__ != "2.0.0")' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$here/python-tools.txt"
fi
