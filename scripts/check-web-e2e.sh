#!/usr/bin/env bash
# End-to-end tests of the web pages in Debian's headless Chromium, driven by
# playwright-core (e2e/run.mjs): `tollgate demo` prepares a small fixture (the
# generated organisation's October and November up to the 22nd) and serves it
# on a free port; each role logs in and its pages are checked against the JSON
# API. Screenshots of every page go to $TOLLGATE_SCREENSHOTS (default
# ci-artifacts/screenshots in the checkout), which CI keeps.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
shots=${TOLLGATE_SCREENSHOTS:-$PWD/ci-artifacts/screenshots}
bash .ci/ensure-chromium.sh
source scripts/lib/work-dir.sh

"$bin" --data-dir "$work/data" demo --now 2026-11-22T12:00:00Z \
  --listen 127.0.0.1:0 --keys-file "$work/keys.json" > "$work/demo.log" 2>&1 &
server=$!
url=""
for _ in $(seq 1200); do
  if [ -s "$work/keys.json" ]; then
    url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$work/keys.json")
    curl -fs "$url/healthz" > /dev/null && break
  fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "tollgate demo stopped before serving:"; tail -n 30 "$work/demo.log"; exit 1
  fi
  sleep 0.1
done
curl -fs "$url/healthz" > /dev/null || { echo "no server at $url"; tail -n 30 "$work/demo.log"; exit 1; }
echo "demo ready at $url: $(grep -m1 '^ready in' "$work/demo.log" || true)"

mkdir -p "$shots"
rm -f "$shots"/*.png
status=0
node e2e/run.mjs "$work/keys.json" "$shots" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- the server's log"; tail -n 40 "$work/demo.log"
  exit "$status"
fi
echo "--- screenshots kept in $shots"
ls -l "$shots"
