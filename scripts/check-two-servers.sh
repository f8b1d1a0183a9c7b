#!/usr/bin/env bash
# Two `tollgate serve` processes side by side on one Postgres database and one
# Azurite lake, as behind a load balancer:
# - a login on one server works on the other, and logging out on the other
#   ends it on the first;
# - a burst of pushes spread over both, during which the server holding the
#   background lease is killed with SIGKILL: every acknowledged push is in the
#   lake, the survivor takes the lease over and derives what is owed, and the
#   budget webhook (a receiver here that records X-Tollgate-Event-Id) gets
#   each event once, not once per server. (Delivery is at least once: a holder
#   killed between sending an event and recording it would rightly send it
#   again, so the kill waits until what is stored has been delivered; the
#   budget's exhaustion comes after it, derived and sent by the survivor.)
# Needs Postgres on 127.0.0.1:5432 and Azurite with $TOLLGATE_CI_AZURE_LAKE
# (.ci/run starts both).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
: "${TOLLGATE_CI_AZURE_LAKE:?set by .ci/run (the Azurite container)}"
pg=${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
db="tollgate_two_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  wait 2> /dev/null || true
  psql "$pg" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$pg" -q -c "CREATE DATABASE $db" > /dev/null
export TOLLGATE_DATABASE_URL="${pg%/*}/$db"
export TOLLGATE_LAKE_URL="$TOLLGATE_CI_AZURE_LAKE/two-$(date +%s)-$$"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Each server has its own local data directory (spooled uploads); all state
# and the lake are shared.
cat > "$work/tollgate.toml" <<'EOF'
[server]
lease_ttl_seconds = 2
evaluate_every_seconds = 1
EOF
tg() { "$bin" --config "$work/tollgate.toml" --data-dir "$work/$1" "${@:2}"; }
admin=$(tg a keys create --role admin --name two-servers 2> /dev/null)
ingest=$(tg a keys create --role ingest --name pusher 2> /dev/null)
month=$(date -u +%Y-%m)
cat > "$work/budgets.toml" <<EOF
[[budget]]
name = "sub-two"
scope = "subscription"
scope_id = "sub-two"
period = "month"
token_quota = 60000
warn_at = [0.25, 0.5, 0.75]
EOF
tg a budgets import "$work/budgets.toml" > /dev/null

hook_port=$(free_port)
python3 - "$hook_port" "$work/events" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(out, "a") as f:
            f.write(self.headers.get("x-tollgate-event-id", "?") + "\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
pids+=($!)

declare -A port pid
for s in a b; do
  port[$s]=$(free_port)
  # The binary itself, not through tg: $! must be the server's pid.
  "$bin" --config "$work/tollgate.toml" --data-dir "$work/$s" serve --listen "127.0.0.1:${port[$s]}" --webhook-url "http://127.0.0.1:$hook_port/hook" \
    > "$work/serve-$s.log" 2>&1 &
  pid[$s]=$!
  pids+=("${pid[$s]}")
done
for s in a b; do
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:${port[$s]}/healthz" > /dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:${port[$s]}/healthz" > /dev/null || {
    echo "server $s did not start:" >&2; tail -n 20 "$work/serve-$s.log" >&2; exit 1; }
done

# A login on a, used on b; a logout on b ends it on a.
url() { echo "http://127.0.0.1:${port[$1]}$2"; }
curl -s -o /dev/null -c "$work/jar" -H "Origin: $(url a '')" --data-urlencode "key=$admin" \
  --data-urlencode "next=/admin" "$(url a /login)"
status() { curl -s -o /dev/null -w '%{http_code}' -b "$work/jar" "$(url "$1" "$2")"; }
[ "$(status b /admin)" = 200 ] || { echo "a login on server a is not seen by server b" >&2; exit 1; }
csrf=$(curl -s -b "$work/jar" "$(url b /admin)" | grep -o 'name="csrf" value="[^"]*"' | head -n 1 | cut -d'"' -f4)
curl -s -o /dev/null -b "$work/jar" -H "Origin: $(url b '')" --data-urlencode "csrf=$csrf" "$(url b /logout)"
[ "$(status a /admin)" != 200 ] || { echo "a logout on server b did not end the session on a" >&2; exit 1; }
echo "a login on one server works on the other; a logout on either ends it on both"

# The burst: 5 records of 1,000 tokens per push, spread over both servers.
acked=0
push() {  # server, push number
  local body="$work/push-$2.jsonl" now
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  : > "$body"
  for r in 1 2 3 4 5; do
    printf '{"request_id":"two-%s-%s","time":"%s","status_code":200,"subscription":"sub-two","deployment":"gpt-4o-mini","model":"gpt-4o-mini","prompt_tokens":800,"completion_tokens":200}\n' \
      "$2" "$r" "$now" >> "$body"
  done
  curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $ingest" \
    -H "Idempotency-Key: push-$2" --data-binary "@$body" "$(url "$1" '/api/v1/ingest?format=canonical')" || true
}
holder_pid() {
  psql "$TOLLGATE_DATABASE_URL" -Atq -c "SELECT split_part(holder, '/', 1) FROM leases WHERE name = 'background'"
}
killed=""
for n in $(seq 1 24); do
  s=$([ $((n % 2)) = 0 ] && echo a || echo b)
  [ "$s" = "$killed" ] && s=$([ "$s" = a ] && echo b || echo a)
  code=$(push "$s" "$n")
  [ "$code" = 200 ] && acked=$((acked + 5))
  if [ "$n" = 8 ]; then
    for _ in $(seq 100); do
      stored=$(psql "$TOLLGATE_DATABASE_URL" -Atq -c "SELECT COUNT(*) FROM budget_events")
      [ "$stored" -gt 0 ] && [ "$(sort -u "$work/events" 2> /dev/null | wc -l)" = "$stored" ] && break
      sleep 0.1
    done
    holder=$(holder_pid)
    for t in a b; do [ "${pid[$t]}" = "$holder" ] && killed=$t; done
    [ -n "$killed" ] || { echo "no server holds the background lease (holder: $holder)" >&2; exit 1; }
    kill -9 "${pid[$killed]}"
    echo "killed server $killed (pid $holder), the background lease holder, after push $n"
  fi
done
survivor=$([ "$killed" = a ] && echo b || echo a)

# The survivor takes the lease over and derives everything committed.
for _ in $(seq 150); do
  fresh=$(curl -s -H "Authorization: Bearer $admin" "$(url "$survivor" /api/v1/freshness)")
  python3 -c 'import json,sys; f=json.loads(sys.argv[1]); sys.exit(f["derived_watermark"] < f["committed_watermark"])' "$fresh" \
    && [ "$(holder_pid)" = "${pid[$survivor]}" ] && break
  sleep 0.2
done
[ "$(holder_pid)" = "${pid[$survivor]}" ] || { echo "server $survivor did not take the lease over" >&2; exit 1; }
sleep 3  # webhooks due are delivered within a deliverer round or two
rows=$(tg "$survivor" sql "SELECT COUNT(*) AS n FROM requests" --format csv | tail -n 1)
[ "$rows" = "$acked" ] || { echo "acknowledged $acked records, the lake holds $rows" >&2; exit 1; }
touch "$work/events"
events=$(wc -l < "$work/events")
dups=$(sort "$work/events" | uniq -d | wc -l)
stored=$(psql "$TOLLGATE_DATABASE_URL" -Atq -c "SELECT COUNT(*) FROM budget_events")
# The budget went from ok to warning to exhausted: at least two events (the
# exhaustion after the kill), and every event stored was delivered.
[ "$stored" -ge 2 ] || { echo "expected the budget's warning and exhaustion, $stored events stored" >&2; exit 1; }
[ "$(sort -u "$work/events" | wc -l)" = "$stored" ] || {
  echo "$stored budget events stored, $(sort -u "$work/events" | wc -l) delivered" >&2; exit 1; }
[ "$dups" = 0 ] || { echo "webhook events delivered twice: $(sort "$work/events" | uniq -d | tr '\n' ' ')" >&2; exit 1; }
echo "two servers: $acked acknowledged records all in the lake after a SIGKILL of the lease holder; server $survivor took the lease over; $events budget events delivered once each"
