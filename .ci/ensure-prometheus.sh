#!/usr/bin/env bash
# Makes sure Debian's `prometheus` (for `promtool check metrics`) and
# `prometheus-alertmanager` (a real receiver for the alerting tests) are
# installed; the tests start their own Alertmanager on a free port, so the
# packaged services are neither needed nor started. Idempotent.
set -euo pipefail

missing=()
[ -x /usr/bin/promtool ] || missing+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
  echo "--- installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  # Packages may not start services inside CI containers.
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
/usr/bin/promtool --version | head -n 1
/usr/bin/prometheus-alertmanager --version 2>&1 | head -n 1
