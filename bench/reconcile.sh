#!/usr/bin/env bash
# Reconciliation benchmark (not a test): generate N requests of the synthetic
# estate and the month's bill (its FOCUS cost export, with the generator's
# injected differences), load the reference data, ingest the traffic and
# import the bill with a release build, then time, each as a fresh CLI process
# (cold: the month priced from the rollups, the bill read from the lake):
#   - `report reconcile --by resource,model,token_kind` and `--by day,model`;
#   - `report chargeback --basis billed` (the true-up);
#   - the estimated chargeback, for scale;
#   - the same reconciliation from a running `tollgate serve` (warm: its
#     priced hours cached), GET /api/v1/reports/reconcile, median of 10;
# beside DuckDB (PyPI, 2 threads, warm) comparing the same two sides from the
# raw Parquet lake: logged tokens per day, resource, model and kind (requests
# joined to token usage, backends.csv for the resource) against the billed
# lines per day, resource, model and kind (the meter read by regexp).
#
#   bench/reconcile.sh [--requests 1000000] [--subscriptions N] [--agents N] [--users N] [--runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."

requests=1000000
subscriptions=400
agents=300
users=5000
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --subscriptions) subscriptions=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
cargo build --release --quiet --bin tollgate
bin="$CARGO_TARGET_DIR/release/tollgate"
work=$(mktemp -d)
port=18091
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
tg() { "$bin" --data-dir "$work/data" "$@"; }

echo "generating $requests requests and the month's bill ..."
"$bin" fixtures generate --month 2026-10 --requests "$requests" --out "$work/in" \
  --subscriptions "$subscriptions" --agents "$agents" --users "$users" > /dev/null
ref="$work/in/reference"
tg prices import "$ref/prices.csv" > /dev/null
tg ownership import "$ref/ownership.toml" > /dev/null
tg backends import "$ref/backends.csv" > /dev/null
tg ptu import "$ref/ptu-reservations.csv" > /dev/null
tg ingest --jobs 1 "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json > /dev/null 2>&1
bill="$work/in/costs/focus-2026-10.csv"
start=$(date +%s.%N)
tg costs import "$bill" > "$work/import.log" 2>&1
end=$(date +%s.%N)
lines=$(($(wc -l < "$bill") - 1))
awk -v s="$start" -v e="$end" -v n="$lines" -v b="$(wc -c < "$bill")" 'BEGIN {
  printf "bill: %d lines (%.1f MB), imported in %.2f s\n", n, b / 1e6, e - s }'

# Median wall time of `runs` fresh processes of a command.
median() {
  local name=$1; shift
  local times=()
  for _ in $(seq "$runs"); do
    local s e
    s=$(date +%s.%N)
    "$@" > /dev/null 2>&1
    e=$(date +%s.%N)
    times+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f", (e - s) * 1000 }')")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" '
    { t[NR] = $1 } END { printf "%s: median %s ms of %d runs (min %s, max %s)\n", name, t[int((NR + 1) / 2)], NR, t[1], t[NR] }'
}

median "tollgate report reconcile --by resource,model,token_kind" \
  tg report reconcile --month 2026-10 --by resource,model,token_kind
median "tollgate report reconcile --by day,model" tg report reconcile --month 2026-10 --by day,model
median "tollgate report chargeback --basis billed --by cost_centre" \
  tg report chargeback --month 2026-10 --basis billed --by cost_centre
median "tollgate report chargeback (estimated) --by cost_centre" \
  tg report chargeback --month 2026-10 --by cost_centre
tg report reconcile --month 2026-10 --by token_kind 2> /dev/null | sed -n '1,12p'

reader=$(tg keys create --role finops --name bench-read | tail -n 1)
if curl -s -o /dev/null "http://127.0.0.1:$port/"; then echo "port $port is already in use" >&2; exit 1; fi
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
  kill -0 "$server" 2> /dev/null || { tail -n 20 "$work/serve.log" >&2; exit 1; }
  sleep 0.2
done
python3 - "$port" "$reader" <<'PY'
import sys, time, urllib.request
port, key = sys.argv[1], sys.argv[2]
for by in ["resource,model,token_kind", "day,model"]:
    url = f"http://127.0.0.1:{port}/api/v1/reports/reconcile?month=2026-10&by={by}"
    times = []
    for _ in range(11):
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            response.read()
        times.append((time.perf_counter() - start) * 1e3)
    warm = sorted(times[1:])
    print(f"serve, GET /api/v1/reports/reconcile?by={by}: first {times[0]:.1f} ms, "
          f"warm median {warm[len(warm) // 2]:.1f} ms of 10")
PY

bash scripts/install-python-tools.sh > /dev/null
python3 - "$work/data/lake" "$ref" <<'PY'
import sys, time, duckdb
lake, ref = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
query = f"""
WITH logged AS (
  SELECT CAST(r.time AS DATE) AS day, lower(b.resource_id) AS resource, t.model,
         sum(coalesce(t.prompt_tokens, 0) - coalesce(t.cached_tokens, 0)) AS input,
         sum(coalesce(t.cached_tokens, 0)) AS cached, sum(coalesce(t.completion_tokens, 0)) AS output
  FROM read_parquet('{lake}/requests/*/*.parquet') r
  JOIN read_parquet('{lake}/token_usage/*/*.parquet') t USING (request_id)
  LEFT JOIN read_csv('{ref}/backends.csv') b ON b.backend = r.backend
  WHERE r.time >= TIMESTAMPTZ '2026-10-01 00:00:00+00' AND r.time < TIMESTAMPTZ '2026-11-01 00:00:00+00'
  GROUP BY ALL),
logged_kinds AS (
  UNPIVOT logged ON input, cached, output INTO NAME kind VALUE tokens),
billed AS (
  SELECT CAST(time AS DATE) AS day, lower(resource_id) AS resource,
         regexp_extract(meter, '^(\\S+)') AS model,
         CASE WHEN meter LIKE '%cchd%' THEN 'cached' WHEN meter LIKE '%Outp%' THEN 'output'
              ELSE 'input' END AS kind,
         sum(quantity) AS tokens, sum(billed_cost) AS billed, sum(list_cost) AS list
  FROM read_parquet('{lake}/billed_costs/*/*.parquet')
  GROUP BY ALL)
SELECT coalesce(b.day, l.day), coalesce(b.resource, l.resource), coalesce(b.model, l.model),
       coalesce(b.kind, l.kind), b.tokens, l.tokens, b.billed, b.list,
       b.tokens - coalesce(l.tokens, 0) AS unlogged
FROM billed b FULL JOIN logged_kinds l
  ON b.day = l.day AND b.resource = l.resource AND b.model = l.model AND b.kind = l.kind
"""
times = []
for _ in range(6):
    start = time.perf_counter()
    rows = con.execute(query).fetchall()
    times.append((time.perf_counter() - start) * 1e3)
warm = sorted(times[1:])
print(f"duckdb, billed against logged per day, resource, model and kind from raw Parquet: "
      f"{len(rows)} rows, first run {times[0]:.1f} ms, warm median {warm[len(warm) // 2]:.1f} ms")
PY
