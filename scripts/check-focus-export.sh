#!/usr/bin/env bash
# The FOCUS 1.0 export passes the FinOps Foundation's validator (PyPI
# focus-validator). A generated month is priced, closed, then given a late batch,
# so the two exports checked hold Usage, Purchase (PTU) and Adjustment rows; the
# same month closed on the billed basis (its generated bill imported and
# allocated, docs/reconciliation.md) is the third. Exits non-zero unless the
# validator says "Validation succeeded." for each (the validator itself exits 0
# either way).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
bash scripts/install-python-tools.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tg() { "$bin" --data-dir "$work/data" "$@"; }

tg fixtures generate --month 2026-10 --requests 2000 --out "$work/in" > /dev/null
ref="$work/in/reference"
tg prices import "$ref/prices.csv" > /dev/null
tg ownership import "$ref/ownership.toml" > /dev/null
tg backends import "$ref/backends.csv" > /dev/null
tg ptu import "$ref/ptu-reservations.csv" > /dev/null
tg ingest "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json > /dev/null
tg month close 2026-10 > /dev/null
printf '%s\n' '{"request_id":"late-1","time":"2026-10-30T12:00:00Z","status_code":200,"subscription":"sub-late","backend":"aoai-swedencentral-paygo","deployment":"gpt-4o-mini","model":"gpt-4o-mini","prompt_tokens":5000,"completion_tokens":700}' \
  > "$work/late.jsonl"
tg ingest --format canonical "$work/late.jsonl" > /dev/null
tg export focus --month 2026-10 -o "$work/focus-2026-10.csv" > /dev/null
tg export focus --month 2026-11 -o "$work/focus-2026-11.csv" > /dev/null
grep -q ',Adjustment,Correction,' "$work/focus-2026-11.csv" || {
  echo "the November export has no adjustment for the late October batch" >&2; exit 1; }

# The same month on the invoice's basis: BilledCost is the bill, allocated.
billed() { "$bin" --data-dir "$work/billed" "$@"; }
billed prices import "$ref/prices.csv" > /dev/null
billed ownership import "$ref/ownership.toml" > /dev/null
billed backends import "$ref/backends.csv" > /dev/null
billed ptu import "$ref/ptu-reservations.csv" > /dev/null
billed ingest "$work"/in/gateway-logs/*.json "$work"/in/llm-logs/*.json > /dev/null
billed costs import "$work/in/costs/focus-2026-10.csv" > /dev/null
billed month close 2026-10 --basis billed > /dev/null
billed export focus --month 2026-10 -o "$work/focus-2026-10-billed.csv" > /dev/null
grep -q 'x_allocation_method' "$work/focus-2026-10-billed.csv" || {
  echo "the billed-basis export does not say how the bill was allocated" >&2; exit 1; }

# The validator opens its currency list relative to the working directory.
site=$(python3 -c 'import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))')
validator=$(dirname "$(python3 -c 'import sys; print(sys.executable)')")/focus-validator
command -v "$validator" > /dev/null || validator=focus-validator
for file in "$work"/focus-2026-10.csv "$work"/focus-2026-11.csv "$work"/focus-2026-10-billed.csv; do
  out=$(cd "$site" && "$validator" --data-file "$file" --validate-version 1.0 \
          --override-file "$root/scripts/focus-validator-overrides.yaml" 2>&1) || true
  if ! grep -q '^Validation succeeded\.' <<< "$out"; then
    echo "focus-validator refused $(basename "$file"):" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "focus-validator 1.0.0 accepts $(basename "$file") ($(($(wc -l < "$file") - 1)) rows)"
done
