#!/usr/bin/env bash
# Budget pull benchmark (not a test): wrk (2 threads, 32 connections) polls
# GET /api/v1/gateways/{gw}/budgets of a gateway with 40 counter keys, side by
# side with nginx serving the same body as a static file: 200s (plain GET), then
# 304s (If-None-Match), while the second half of the month is ingested beside it
# (one day per `tollgate ingest`, paced over the four runs). Targets: >= 0.7x
# nginx's requests/s, p99 under 5 ms. Installs wrk and nginx from Debian when
# missing (as root). --keep keeps the work dir (wrk, server and ingest logs).
#
#   bench/budget-pull.sh [--requests 200000] [--duration 15 (seconds per run)] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."

requests=200000
duration=15
keep=0
tg_port=18080
nginx_port=18081
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
pids=()
own_policy=0
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  # An ingest the (now stopped) pacing loop had running.
  if [ -s "$work/ingest.pid" ]; then kill "$(cat "$work/ingest.pid")" 2> /dev/null || true; fi
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if ! command -v wrk > /dev/null || ! command -v nginx > /dev/null; then
  echo "--- installing wrk and nginx (Debian packages)"
  [ "$(id -u)" = 0 ] || { echo "run as root, or: apt-get install wrk nginx-light" >&2; exit 1; }
  # Keep the package scripts from starting an nginx service on port 80.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q > /dev/null
  apt-get install -y -q wrk > /dev/null
  command -v nginx > /dev/null || apt-get install -y -q nginx-light > /dev/null || apt-get install -y -q nginx > /dev/null
fi

echo "--- building the release binary"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
cargo build --release --locked --quiet --bin tollgate
bin="$CARGO_TARGET_DIR/release/tollgate"
data="$work/data"
tg() { "$bin" --data-dir "$data" "$@"; }

echo "--- generating $requests requests, loading reference data"
"$bin" fixtures generate --month 2026-10 --requests "$requests" --out "$work/gen" > /dev/null
ref="$work/gen/reference"
tg prices import "$ref/prices.csv" > /dev/null
tg ownership import "$ref/ownership.toml" > /dev/null
tg backends import "$ref/backends.csv" > /dev/null
tg ptu import "$ref/ptu-reservations.csv" > /dev/null

mapfile -t days < <(find "$work/gen/gateway-logs" -name '*.json' -printf '%f\n' | sed 's/\.json$//' | sort)
half=$(( ${#days[@]} / 2 ))
first=()
for d in "${days[@]:0:half}"; do first+=("$work/gen/gateway-logs/$d.json" "$work/gen/llm-logs/$d.json"); done
rest=("${days[@]:half}")
echo "--- ingesting the first $half of ${#days[@]} days"
tg ingest --format apim "${first[@]}" > "$work/ingest-first.log"

gws=$(tg sql "SELECT DISTINCT gateway_id FROM requests WHERE gateway_id IS NOT NULL ORDER BY 1" --format csv | sed 1d)
gw=${gws%%$'\n'*}
[ -n "$gw" ] || { echo "no gateway_id in the ingested traffic" >&2; exit 1; }
[ "$gw" = "$gws" ] || echo "note: several gateways in the traffic ($(echo "$gws" | tr '\n' ' ')), using $gw" >&2

echo "--- 40 budgets for gateway $gw, a gateway key"
# Distinct counter keys: every mapped subscription, then cost centres, then agents.
awk -F'"' '/^\[/ { sec = $0; next }
  /^"/ && sec ~ /^\[subscriptions\]/ { print "subscription", $2 }
  /^"/ && sec ~ /^\[cost_centres\]/ { cc[++n] = $2 }
  /^"/ && sec ~ /^\[agents\]/ { ag[++m] = $2 }
  END { for (i = 1; i <= n; i++) print "cost_centre", cc[i]; for (i = 1; i <= m; i++) print "agent", ag[i] }' \
  "$ref/ownership.toml" | head -n 40 > "$work/scopes"
[ "$(wc -l < "$work/scopes")" = 40 ] || { echo "fewer than 40 scopes in ownership.toml" >&2; exit 1; }
i=0
while read -r scope id; do
  i=$((i + 1))
  printf '[[budget]]\nname = "bench %s %s"\nscope = "%s"\nscope_id = "%s"\n' "$scope" "$id" "$scope" "$id"
  printf 'token_quota = 1000000000000\ntokens_per_minute = %d\naction = "notify"\ngateways = ["%s"]\n\n' \
    $((10000 * i)) "$gw"
done < "$work/scopes" > "$work/budgets.toml"
tg budgets import "$work/budgets.toml"
key=$(tg keys create --role gateway --gateway "$gw" --name bench | tail -n 1)

for port in "$tg_port" "$nginx_port"; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then echo "port $port is already in use" >&2; exit 1; fi
done
wait_for() { # url pid log: until the url answers, while the process lives
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; kill -0 "$2" 2> /dev/null || break; sleep 0.2; done
  echo "$1 does not answer:" >&2; tail -n 20 "$3" >&2; exit 1
}

echo "--- starting tollgate serve on 127.0.0.1:$tg_port"
"$bin" --data-dir "$data" serve --listen "127.0.0.1:$tg_port" > "$work/serve.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$tg_port/healthz" $! "$work/serve.log"
tg_url="http://127.0.0.1:$tg_port/api/v1/gateways/$gw/budgets"
etag_of() { awk 'tolower($1) == "etag:" { print $2 }' "$1" | tr -d '\r'; }
mkdir -p "$work/www" "$work/nginx"
curl -sSf -D "$work/tg.headers" -o "$work/www/budgets.json" -H "Authorization: Bearer $key" "$tg_url"
chmod 755 "$work" "$work/www"; chmod 644 "$work/www/budgets.json" # nginx workers run unprivileged
bytes=$(wc -c < "$work/www/budgets.json")
keys=$(grep -o '"counter_key"' "$work/www/budgets.json" | wc -l)
echo "body: $bytes bytes, $keys counter keys, ETag $(etag_of "$work/tg.headers")"

echo "--- starting nginx on 127.0.0.1:$nginx_port with the same body"
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { application/json json; } default_type application/json;
  sendfile on; etag on;
  client_body_temp_path $work/nginx/body;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
EOF
nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" -g 'daemon off;' &
pids+=($!)
nginx_url="http://127.0.0.1:$nginx_port/budgets.json"
wait_for "$nginx_url" $! "$work/nginx/error.log"
curl -sSf -I "$nginx_url" > "$work/nginx.headers"

# Counts answers by status; with an ETag argument every request carries
# If-None-Match, and a 200 (the view changed) makes its ETag the one sent next,
# as a polling gateway does. Prints one RESULT line: requests/s, p99 in ms,
# socket errors, status:count pairs.
cat > "$work/count.lua" <<'EOF'
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function init(args)
  counts, etag = {}, args[1]
  if etag == "" then etag = nil end
end
local req, sent
function request()
  if req == nil or sent ~= etag then
    local h = {}
    for k, v in pairs(wrk.headers) do h[k] = v end
    h["If-None-Match"] = etag
    req, sent = wrk.format(nil, nil, h), etag
  end
  return req
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if etag and status == 200 then etag = headers["etag"] or headers["ETag"] or etag end
end
function done(summary, latency, requests)
  local total, parts = {}, {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do parts[#parts + 1] = string.format("%d:%d", status, n) end
  table.sort(parts)
  if #parts == 0 then parts[1] = "none" end
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %d %s\n", summary.requests * 1e6 / summary.duration,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
EOF

gap=$(awk -v t="$duration" -v n="${#rest[@]}" 'BEGIN { printf "%.2f", 4 * t / n }')
echo "--- ingesting the other ${#rest[@]} days beside the load, one every $gap s + its ingest time"
(
  for d in "${rest[@]}"; do
    "$bin" --data-dir "$data" ingest --format apim "$work/gen/gateway-logs/$d.json" "$work/gen/llm-logs/$d.json" &
    echo $! > "$work/ingest.pid"
    wait $!
    rm -f "$work/ingest.pid"
    sleep "$gap"
  done
) > "$work/ingest.log" 2>&1 &
ingester=$!
pids+=("$ingester")

committed() { grep -c ' committed:' "$work/ingest.log" || true; }
rows=()
bench() { # name url etag [wrk args...]
  local name=$1 url=$2 etag=$3 before result alive
  shift 3
  before=$(committed)
  wrk -t 2 -c 32 -d "${duration}s" --latency -s "$work/count.lua" "$@" "$url" -- "$etag" > "$work/wrk-$name.log" 2>&1
  result=$(grep '^RESULT' "$work/wrk-$name.log") || { cat "$work/wrk-$name.log" >&2; exit 1; }
  if kill -0 "$ingester" 2> /dev/null; then alive=yes; else alive=no; fi
  rows+=("$name ${result#RESULT } $(( $(committed) - before )) $alive")
}
auth="Authorization: Bearer $key"
echo "--- wrk: nginx 200";   bench nginx-200 "$nginx_url" ""
echo "--- wrk: tollgate 200"; bench tollgate-200 "$tg_url" "" -H "$auth"
echo "--- wrk: nginx 304";   bench nginx-304 "$nginx_url" "$(etag_of "$work/nginx.headers")"
curl -sSf -D "$work/tg.headers" -o /dev/null -H "$auth" "$tg_url" # the ETag as of now
echo "--- wrk: tollgate 304"; bench tollgate-304 "$tg_url" "$(etag_of "$work/tg.headers")" -H "$auth"

echo
echo "Budget pull, gateway $gw, $keys counter keys, body $bytes bytes; wrk 2 threads, 32 connections, ${duration}s each, $(nproc) cores"
echo
printf '%s\n' "${rows[@]}" | awk '
  { name[NR] = $1; rps[NR] = $2; p99[NR] = $3; err[NR] = $4; st[NR] = $5; ing[NR] = $6; alive[NR] = $7 }
  END {
    print "| what | requests/s | p99 | ratio to nginx | answers (status:count) | socket errors | ingest batches committed during it |"
    print "| --- | --- | --- | --- | --- | --- | --- |"
    for (i = 1; i <= NR; i++) {
      base = (i % 2 == 0) ? rps[i - 1] : rps[i]
      printf "| %s | %.0f | %.2f ms | %.2fx | %s | %d | %d%s |\n", name[i], rps[i], p99[i], rps[i] / base,
        st[i], err[i], ing[i], alive[i] == "yes" ? "" : " (ingest over)"
    }
    print ""
    for (i = 2; i <= NR; i += 2) {
      ratio = rps[i] / rps[i - 1]
      printf "- %s: %.2fx nginx (target >= 0.7x): **%s**; p99 %.2f ms (target < 5 ms): **%s**\n", name[i], ratio,
        ratio >= 0.7 ? "met" : "missed", p99[i], p99[i] < 5 ? "met" : "missed"
    }
  }'
echo "- tollgate-304: a 200 among its answers is the view changing under the ingest (the client then sends the new ETag)"
if kill -0 "$ingester" 2> /dev/null; then state="still running"; else state="finished"; fi
echo "- the paced ingest was $state after the last run; its output (tail):"
echo; tail -n 4 "$work/ingest.log"
