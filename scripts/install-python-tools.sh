#!/usr/bin/env bash
# Installs the pinned Python tools the checks use (PyPI), unless already present.
set -euo pipefail
here=$(dirname "$0")
if ! python3 - <<'PY' 2>/dev/null
import sys, duckdb, importlib.metadata as m
sys.exit(duckdb.__version__ != "2.0.0" or m.version("focus-validator") != "1.0.0"
         or m.version("multimethod") != "1.10"
         or m.version("schemathesis") != "4.32.5"
         or m.version("openlineage-python") != "1.54.0"
         or m.version("moto") != "5.2.6" or m.version("azure-storage-blob") != "12.27.1"
         or m.version("deltalake") != "1.6.6" or m.version("pyarrow") != "22.0.0")
PY
then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$here/python-tools.txt"
fi
