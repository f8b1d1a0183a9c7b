#!/usr/bin/env bash
# Report benchmark (not a test): generate N requests of the synthetic estate, load
# its reference data, ingest it with a release build (one file at a time, the
# rollups once all are in), then time:
#   - the ingest and its rollups;
#   - the chargeback (examples/chargeback_timing.rs): cold, cached, after a
#     new batch and after a new price book, and the SLA report after a new
#     batch (issue 17's targets: faster than DuckDB from raw Parquet, goal
#     20 ms at 1M; cached under 1 ms);
#   - DuckDB (PyPI, 2 threads, warm) answering from the raw Parquet lake: the
#     chargeback by subscription and model at the book's prices, the SLA
#     numbers per backend, and the month's usage per hour and every dimension
#     (what the rollups hold).
#
# The estate has realistic cardinality by default (--subscriptions 400
# --agents 300 --users 5000: about 425k hourly rollup rows per 1M requests);
# --subscriptions 40 --agents 12 --users 200 is the small estate of the tests.
#
#   bench/report.sh [--requests 1000000] [--subscriptions N] [--agents N] [--users N]
set -euo pipefail
cd "$(dirname "$0")/.."

requests=1000000
subscriptions=400
agents=300
users=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --subscriptions) subscriptions=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
cargo build --release --quiet --bin tollgate --example chargeback_timing
bin="$CARGO_TARGET_DIR/release/tollgate"
timing="$CARGO_TARGET_DIR/release/examples/chargeback_timing"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tg() { "$bin" --data-dir "$work/data" "$@"; }

echo "generating $requests requests ..."
"$bin" fixtures generate --month 2026-10 --requests "$requests" --out "$work/in" \
  --subscriptions "$subscriptions" --agents "$agents" --users "$users" > /dev/null
ref="$work/in/reference"
tg prices import "$ref/prices.csv" > /dev/null
tg ownership import "$ref/ownership.toml" > /dev/null
tg backends import "$ref/backends.csv" > /dev/null
tg ptu import "$ref/ptu-reservations.csv" > /dev/null

echo "ingesting (1 job; the rollups once the files are in) ..."
start=$(date +%s.%N)
tg ingest --jobs 1 "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json \
  > "$work/ingest.log" 2> "$work/ingest.err"
end=$(date +%s.%N)
# "rolled up N batches: H hours, R rows in S s"
read -r batches roll_s < <(sed -n 's/^rolled up \([0-9]*\) batches: .* in \([0-9.]*\) s$/\1 \2/p' "$work/ingest.err") || true
awk -v s="$start" -v e="$end" -v r="${roll_s:-0}" -v b="${batches:-0}" 'BEGIN {
  total = e - s; ingest = total - r
  printf "ingest %.2f s + rollups %.2f s over %d batches (end to end %.2f s, alerts and lineage included)\n",
    ingest, r, b, total }'

rollup_rows=$(tg sql "SELECT COUNT(*) AS n FROM rollup_hourly" --format csv | tail -1)
db_mb=$(du -m "$work/data/tollgate.db" | cut -f1)
derived_mb=$(du -sm "$work/data/lake/derived" | cut -f1)
echo "hourly rollup rows: $rollup_rows (target: >= 250000 per 1M requests); state database ${db_mb} MB; derived tables ${derived_mb} MB"

for by in subscription,model cost_centre subscription,model,agent; do
  "$timing" "$work/data" 2026-10 20 "$by"
done

bash scripts/install-python-tools.sh > /dev/null
python3 - "$work/data/lake" "$ref" <<'PY'
import sys, time, duckdb
lake, ref = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
query = f"""
SELECT date_trunc('hour', r.time) AS hour, r.subscription, r.product, r.agent, r.api,
       r.backend, t.deployment, t.model, count(*) AS requests,
       sum(coalesce(t.prompt_tokens, 0)), sum(coalesce(t.cached_tokens, 0)),
       sum(coalesce(t.completion_tokens, 0))
FROM read_parquet('{lake}/requests/*/*.parquet') r
LEFT JOIN read_parquet('{lake}/token_usage/*/*.parquet') t USING (request_id)
WHERE r.time >= TIMESTAMPTZ '2026-10-01 00:00:00+00' AND r.time < TIMESTAMPTZ '2026-11-01 00:00:00+00'
GROUP BY ALL
"""
times = []
for _ in range(6):
    start = time.perf_counter()
    rows = con.execute(query).fetchall()
    times.append((time.perf_counter() - start) * 1e3)
warm = sorted(times[1:])
print(f"duckdb, the month's usage per hour and dimension from raw Parquet: {len(rows)} rows, "
      f"first run {times[0]:.1f} ms, warm median {warm[len(warm) // 2]:.1f} ms")
chargeback = f"""
WITH u AS (
  SELECT r.subscription, t.model, r.backend, CAST(r.time AS DATE) AS day,
         coalesce(t.prompt_tokens, 0) AS p, coalesce(t.cached_tokens, 0) AS c,
         coalesce(t.completion_tokens, 0) AS o
  FROM read_parquet('{lake}/requests/*/*.parquet') r
  LEFT JOIN read_parquet('{lake}/token_usage/*/*.parquet') t USING (request_id)
  WHERE r.time >= TIMESTAMPTZ '2026-10-01 00:00:00+00' AND r.time < TIMESTAMPTZ '2026-11-01 00:00:00+00')
SELECT u.subscription, u.model, count(*), sum(p), sum(o),
       sum(((p - c) * pr.input_rate + c * pr.cached_input_rate + o * pr.output_rate) / 1e6)
FROM u
LEFT JOIN read_csv('{ref}/backends.csv') b ON b.backend = u.backend
LEFT JOIN read_csv('{ref}/prices.csv') pr ON pr.model = u.model
  AND pr.deployment_type = b.deployment_type AND u.day >= pr.effective_from
  AND (pr.effective_to IS NULL OR u.day < pr.effective_to)
GROUP BY ALL
"""
times = []
for _ in range(6):
    start = time.perf_counter()
    rows = con.execute(chargeback).fetchall()
    times.append((time.perf_counter() - start) * 1e3)
warm = sorted(times[1:])
print(f"duckdb, chargeback by subscription and model (pay-as-you-go at the book's price) from raw Parquet: "
      f"{len(rows)} groups, warm median {warm[len(warm) // 2]:.1f} ms")
sla = f"""
SELECT backend, count(*), sum(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END),
       quantile_cont(total_latency_ms, 0.95)
FROM read_parquet('{lake}/requests/*/*.parquet')
WHERE time >= TIMESTAMPTZ '2026-10-01 00:00:00+00' AND time < TIMESTAMPTZ '2026-11-01 00:00:00+00'
GROUP BY ALL
"""
times = []
for _ in range(6):
    start = time.perf_counter()
    con.execute(sla).fetchall()
    times.append((time.perf_counter() - start) * 1e3)
warm = sorted(times[1:])
print(f"duckdb, the month's requests, 5xx and p95 latency per backend from raw Parquet: "
      f"warm median {warm[len(warm) // 2]:.1f} ms")
PY
