#!/usr/bin/env bash
# The lake on object storage, checked by independent readers. A generated month
# is ingested twice, into a local lake and into an Azure lake (Azurite, at
# $TOLLGATE_CI_AZURE_LAKE, which .ci/ensure-object-stores.sh makes), and
# - both answer the same chargeback, byte for byte;
# - the Python `deltalake` package (delta-rs) with pyarrow reads every table of
#   both lakes as a Delta table and agrees with `tollgate sql` row for row (each
#   row's id and time);
# - a second reader parses the local `_delta_log` against the Delta protocol
#   itself: contiguous versions, protocol and metadata first, known actions
#   with their required fields, each file added once and present at its size,
#   every commit carrying Tollgate's transaction with a rising version;
# - `tollgate lake publish` rebuilds a removed log from the manifest and leaves
#   out a file no batch committed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
: "${TOLLGATE_CI_AZURE_LAKE:?set by .ci/run (the Azurite container)}"
bash scripts/install-python-tools.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
azure_lake="$TOLLGATE_CI_AZURE_LAKE/run-$(date +%s)-$$"
local_tg() { "$bin" --data-dir "$work/local" "$@"; }
azure_tg() { "$bin" --data-dir "$work/azure" --lake-url "$azure_lake" "$@"; }

"$bin" fixtures generate --month 2026-10 --requests 5000 --out "$work/in" > /dev/null
ref="$work/in/reference"
for tg in local_tg azure_tg; do
  $tg prices import "$ref/prices.csv" > /dev/null
  $tg ownership import "$ref/ownership.toml" > /dev/null
  $tg backends import "$ref/backends.csv" > /dev/null
  $tg ptu import "$ref/ptu-reservations.csv" > /dev/null
  $tg ingest "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json > /dev/null 2>&1
  $tg report chargeback --month 2026-10 --format csv > "$work/chargeback-$tg.csv" 2> /dev/null
done
cmp "$work/chargeback-local_tg.csv" "$work/chargeback-azure_tg.csv"
echo "the Azure lake ($azure_lake) answers the local lake's chargeback: $(wc -l < "$work/chargeback-local_tg.csv") lines"

# What Tollgate itself reads: every table's rows as (id, time in µs).
for tg in local_tg azure_tg; do
  for spec in requests:request_id token_usage:request_id token_metrics:metric_id dlp_hits:hit_id; do
    table=${spec%%:*} id=${spec##*:}
    $tg sql "SELECT $id AS id, CAST(time AS BIGINT) AS time_us FROM $table" --format csv \
      > "$work/$tg-$table.csv"
  done
done

# An orphan (a crashed ingest's file) beside the committed ones, then the
# local log removed: publish rebuilds it from the manifest alone.
some=$(find "$work/local/lake/requests" -name '*.parquet' | head -n 1)
cp "$some" "$(dirname "$some")/0999999999-orphan.parquet"
rm -rf "$work/local/lake"/*/_delta_log
local_tg lake publish --format json > "$work/publish.json"

python3 - "$work" "$azure_lake" <<'PY'
import csv, json, os, sys
from deltalake import DeltaTable

work, azure_lake = sys.argv[1], sys.argv[2]
TABLES = {"requests": "request_id", "token_usage": "request_id",
          "token_metrics": "metric_id", "dlp_hits": "hit_id"}
# Azurite's well-known development account, as delta-rs's Azure client takes it.
azure = {"use_emulator": "true", "account_name": "devstoreaccount1",
         "allow_http": "true"}

def tollgate_rows(tg, table):
    with open(f"{work}/{tg}-{table}.csv") as f:
        return sorted((r["id"], int(r["time_us"])) for r in csv.DictReader(f))

def delta_rows(uri, table, options=None):
    t = DeltaTable(f"{uri}/{table}", storage_options=options).to_pyarrow_table()
    ids = t.column(TABLES[table]).to_pylist()
    times = t.column("time").cast("int64").to_pylist()
    return sorted(zip(ids, times)), t.schema

for table in TABLES:
    want = tollgate_rows("local_tg", table)
    got, schema = delta_rows(f"{work}/local/lake", table)
    assert got == want, (table, len(got), len(want))
    assert "date" in schema.names, schema
    got_azure, _ = delta_rows(azure_lake, table, azure)
    assert got_azure == tollgate_rows("azure_tg", table) == want, (table, len(got_azure))
    print(f"delta-rs reads {table}: {len(got)} rows, the same as tollgate sql, on disk and in Azurite")

# The protocol, read by hand from the rebuilt local log.
published = {p["table"]: p for p in json.load(open(f"{work}/publish.json"))}
for table in TABLES:
    log = f"{work}/local/lake/{table}/_delta_log"
    names = sorted(os.listdir(log))
    assert names == [f"{v:020}.json" for v in range(len(names))], names
    added, last_txn = {}, -1
    for version, name in enumerate(names):
        actions = [json.loads(l) for l in open(f"{log}/{name}") if l.strip()]
        kinds = [next(iter(a)) for a in actions]
        assert all(len(a) == 1 for a in actions), name
        assert set(kinds) <= {"protocol", "metaData", "commitInfo", "txn", "add", "remove"}, kinds
        if version == 0:
            proto = next(a["protocol"] for a in actions if "protocol" in a)
            assert proto["minReaderVersion"] == 1 and proto["minWriterVersion"] >= 2, proto
            meta = next(a["metaData"] for a in actions if "metaData" in a)
            schema = json.loads(meta["schemaString"])
            assert schema["type"] == "struct" and meta["partitionColumns"] == ["date"], meta
            assert meta["format"]["provider"] == "parquet"
            assert {f["name"] for f in schema["fields"]} >= {"time", TABLES[table], "date"}
        txns = [a["txn"] for a in actions if "txn" in a and a["txn"]["appId"] == "tollgate"]
        assert len(txns) == 1 and txns[0]["version"] > last_txn, (name, txns)
        last_txn = txns[0]["version"]
        for a in actions:
            if "add" in a:
                add = a["add"]
                for key in ("path", "partitionValues", "size", "modificationTime", "dataChange"):
                    assert key in add, (name, key)
                assert add["path"] not in added, f"{add['path']} added twice"
                assert add["path"].startswith(f"date={add['partitionValues']['date']}/"), add
                path = f"{work}/local/lake/{table}/{add['path']}"
                assert os.path.getsize(path) == add["size"], add
                assert json.loads(add["stats"])["numRecords"] > 0, add
                added[add["path"]] = add
    assert not any("orphan" in p for p in added), "an uncommitted file was published"
    assert published[table]["files_added"] == len(added), (table, published[table])
    print(f"{table}: {len(names)} Delta commit(s), {len(added)} files, protocol checks pass")
PY
