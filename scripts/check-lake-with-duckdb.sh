#!/usr/bin/env bash
# Invariant 1: the lake is plain Hive-partitioned Parquet another engine reads.
# Ingests the sample, has DuckDB read exactly the committed files (with the `date`
# partition from the paths), and compares its totals with Tollgate's own SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
bash scripts/install-python-tools.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tg() { "$bin" --data-dir "$work/data" "$@"; }

tg ingest fixtures/samples/canonical-small.jsonl >/dev/null
tg lake ls --files --format csv > "$work/files.csv"
tg sql "SELECT COUNT(*) AS requests, SUM(prompt_tokens) AS prompt, MIN(time) AS first FROM usage" \
  --format json > "$work/tollgate.json"

python3 - "$work" <<'PY'
import csv, json, sys, duckdb
work = sys.argv[1]
files = {}
for row in csv.DictReader(open(f"{work}/files.csv")):
    files.setdefault(row["table"], []).append(row["path"])
want = json.load(open(f"{work}/tollgate.json"))[0]
con = duckdb.connect()
for table, paths in files.items():
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({paths!r}, hive_partitioning = true)")
requests, prompt, dates = con.execute(
    "SELECT COUNT(*), SUM(t.prompt_tokens), COUNT(DISTINCT r.date) "
    "FROM requests r LEFT JOIN token_usage t USING (request_id)").fetchone()
types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE requests)").fetchall())
assert requests == want["requests"], (requests, want)
assert prompt == want["prompt"], (prompt, want)
assert dates == 2, dates
assert types["time"] == "TIMESTAMP WITH TIME ZONE", types["time"]
print(f"duckdb {duckdb.__version__} reads the committed lake: {requests} requests, "
      f"{prompt} prompt tokens, {dates} date partitions, as Tollgate does")
PY
