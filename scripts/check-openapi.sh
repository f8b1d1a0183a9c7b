#!/usr/bin/env bash
# schemathesis (PyPI) fuzzes every operation of the server's OpenAPI document,
# with an admin key, against a server holding a generated month and budgets;
# it fails on any 5xx (and on a key the server did not accept). Its health
# check on how many generated cases it had to discard is not a server fault
# (it failed at random on POST /api/v1/ingest's query, header and body): off.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
bash scripts/install-python-tools.sh
source scripts/lib/work-dir.sh
tg() { "$bin" --data-dir "$work/data" "$@"; }

tg fixtures generate --month 2026-10 --requests 2000 --out "$work/in" > /dev/null
ref="$work/in/reference"
tg prices import "$ref/prices.csv" > /dev/null
tg ownership import "$ref/ownership.toml" > /dev/null
tg backends import "$ref/backends.csv" > /dev/null
tg ingest "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json > /dev/null
tg budgets import "$ref/budgets.toml" > /dev/null
key=$(tg keys create --role admin --name schemathesis 2> /dev/null)

# A free port from the kernel, then the server on it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break
  sleep 0.1
done

# A key the server refused would make every answer 401, which schemathesis only
# warns about: make that a failure.
# The gateway in the generated traffic, so the pull API is reached, not only its 404.
gateway=$(tg sql "SELECT DISTINCT gateway_id FROM requests" --format csv | sed -n 2p)
cat > "$work/schemathesis.toml" <<TOML
[warnings]
fail-on = ["missing_auth"]

[parameters]
"path.gateway" = "$gateway"
TOML
cd "$work"
status=0
NO_COLOR=1 schemathesis --config-file "$work/schemathesis.toml" run \
  "http://127.0.0.1:$port/api/v1/openapi.json" \
  --checks not_a_server_error \
  -H "Authorization: Bearer $key" \
  --max-examples 30 \
  --request-timeout 20 \
  --phases examples,coverage,fuzzing \
  --generation-database none \
  --suppress-health-check filter_too_much || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -50 "$work/serve.log" >&2
fi
exit "$status"
