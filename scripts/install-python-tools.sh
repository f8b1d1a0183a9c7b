#!/usr/bin/env bash
# Installs the pinned Python tools the checks use (PyPI, python-tools.txt),
# unless every pin is already installed at its version.
set -euo pipefail
here=$(dirname "$0")
if ! python3 - "$here/python-tools.txt" <<'PY' 2>/dev/null
import re, sys, importlib.metadata as m
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line).groups()
        if m.version(name) != version:
            sys.exit(1)
PY
then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$here/python-tools.txt"
fi
