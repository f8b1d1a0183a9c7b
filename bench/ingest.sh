#!/usr/bin/env bash
# Ingest benchmark (not a test): generate N requests of the synthetic estate as
# APIM export files, ingest them with a release build, print requests/s, MB/s and
# peak RSS. With --vs-duckdb, DuckDB (PyPI) turns the same files into a
# date-partitioned Parquet lake with the same request/LLM join, and the ratio is
# printed (above 1: Tollgate is faster).
#
# The estate's cardinality is bench/report.sh's (--subscriptions 400 --agents
# 300 --users 5000 by default). With --lake-url, the lake is written there (a
# fresh prefix under it; e.g. az://bench with AZURE_STORAGE_USE_EMULATOR=true
# for Azurite) instead of the local data directory. The lake's size is printed.
#
#   bench/ingest.sh [--requests 1000000] [--vs-duckdb] [--lake-url URL]
#                   [--subscriptions N] [--agents N] [--users N]
set -euo pipefail
cd "$(dirname "$0")/.."

requests=1000000
vs_duckdb=0
lake=()
subscriptions=400
agents=300
users=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --vs-duckdb) vs_duckdb=1; shift ;;
    --lake-url) lake=(--lake-url "${2%/}/bench-$(date +%s)-$$"); shift 2 ;;
    --subscriptions) subscriptions=$2; shift 2 ;;
    --agents) agents=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
cargo build --release --quiet --bin tollgate
bin="$CARGO_TARGET_DIR/release/tollgate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "generating $requests requests ..."
"$bin" fixtures generate --month 2026-10 --requests "$requests" --out "$work/in" \
  --subscriptions "$subscriptions" --agents "$agents" --users "$users"
bytes=$(cat "$work"/in/*/*.json | wc -c)
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')

jobs=$(nproc)
echo "ingesting $mb MB with tollgate ($jobs jobs) into ${lake[1]:-the local data directory} ..."
/usr/bin/time -f "%e %M" -o "$work/time" \
  "$bin" --data-dir "$work/data" "${lake[@]}" ingest --jobs "$jobs" "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json \
  > "$work/ingest.log"
read -r secs rss_kb < "$work/time"
if grep -qv 'quarantined 0$' "$work/ingest.log"; then
  echo "warning: some lines were quarantined:" >&2
  grep -v 'quarantined 0$' "$work/ingest.log" >&2 || true
fi
lake_bytes=$("$bin" --data-dir "$work/data" "${lake[@]}" lake ls --format csv \
  | awk -F, 'NR > 1 { b += $NF } END { print b + 0 }')
awk -v n="$requests" -v s="$secs" -v mb="$mb" -v rss="$rss_kb" -v lake="$lake_bytes" 'BEGIN {
  printf "tollgate: %d requests, %s MB in %.2f s: %.0f requests/s, %.1f MB/s, peak RSS %.0f MiB; lake %.1f MB\n",
    n, mb, s, n / s, mb / s, rss / 1024, lake / 1e6 }'

if [ "$vs_duckdb" = 1 ]; then
  bash scripts/install-python-tools.sh
  echo "the same with duckdb (2 threads) ..."
  duck=$(python3 - "$work" <<'PY'
import resource, sys, time, duckdb
work = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads = 2")
start = time.perf_counter()
con.execute(f"""
COPY (
  WITH g AS (
    SELECT correlationId AS request_id, CAST("time" AS TIMESTAMPTZ) AS "time",
           properties.apimSubscriptionId AS subscription, properties.productId AS product,
           properties.responseCode AS status_code, properties.backendId AS backend,
           durationMs AS total_latency_ms, properties.cache AS cache_status
    FROM read_json_auto('{work}/in/gateway-logs/*.json', format = 'newline_delimited',
                        maximum_object_size = 67108864)),
  l AS (
    SELECT r.Properties.CorrelationId AS request_id, first(r.Properties.ModelName) AS model,
           first(r.Properties.PromptTokens) AS prompt_tokens,
           first(r.Properties.PromptCachedTokens) AS cached_tokens,
           first(r.Properties.CompletionTokens) AS completion_tokens
    FROM (SELECT unnest(records) AS r
          FROM read_json_auto('{work}/in/llm-logs/*.json', format = 'newline_delimited',
                              maximum_object_size = 67108864))
    GROUP BY 1)
  SELECT g.*, l.model, l.prompt_tokens, l.cached_tokens, l.completion_tokens,
         strftime(g."time", '%Y-%m-%d') AS "date"
  FROM g LEFT JOIN l USING (request_id)
) TO '{work}/duck' (FORMAT PARQUET, PARTITION_BY ("date"), COMPRESSION ZSTD)
""")
secs = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{secs:.2f} {rss:.0f}")
PY
)
  read -r dsecs drss <<< "$duck"
  awk -v n="$requests" -v s="$dsecs" -v mb="$mb" -v rss="$drss" -v t="$secs" 'BEGIN {
    printf "duckdb:   %d requests, %s MB in %.2f s: %.0f requests/s, %.1f MB/s, peak RSS %.0f MiB\n",
      n, mb, s, n / s, mb / s, rss
    printf "ratio: tollgate is %.2fx duckdb'"'"'s speed (target: >= 1.0)\n", s / t }'
fi
