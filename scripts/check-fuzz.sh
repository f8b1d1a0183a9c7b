#!/usr/bin/env bash
# Fuzzes every input parser (adapters, the ingest pipeline, OpenLineage, the
# catalog, the price book, budgets, ownership, backends, PTU reservations) on
# mutated real inputs for a bounded time each, two targets at a time, with the
# debug build CI already made. Fails on a panic, a broken invariant, an input
# slower than 5 s or a peak resident size over 1 GiB; a failing input is kept
# in ci-artifacts/fuzz-crashes. FUZZ_SECONDS sets the time per parser
# (default 60; the three small reference formats get a third of it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
seconds="${FUZZ_SECONDS:-60}"
cargo build -q -p tollgate-fuzz --locked
bin="$CARGO_TARGET_DIR/debug/tollgate-fuzz"
crashes="ci-artifacts/fuzz-crashes"
mkdir -p "$crashes"
short=$(( seconds / 3 > 1 ? seconds / 3 : 1 ))
lane() {
  local status=0
  for spec in "$@"; do
    local target="${spec%%:*}" time="${spec##*:}"
    "$bin" --target "$target" --seconds "$time" --seed "${FUZZ_SEED:-$RANDOM}" \
      --crashes "$crashes" || status=1
  done
  return "$status"
}
lane canonical:"$seconds" apim:"$seconds" kong:"$seconds" litellm:"$seconds" \
  appinsights:"$seconds" purview-dlp:"$seconds" azure-cost:"$seconds" ownership:"$short" &
first=$!
lane ingest-file:"$seconds" openlineage:"$seconds" catalog:"$seconds" \
  price-book:"$seconds" budgets:"$seconds" otlp:"$seconds" backends:"$short" ptu:"$short" \
  meters:"$short" &
second=$!
status=0
wait "$first" || status=1
wait "$second" || status=1
if [ "$status" -ne 0 ]; then
  echo "fuzzing found a failure; inputs in $crashes" >&2
fi
exit "$status"
