#!/usr/bin/env bash
# The lineage HTTP query benchmark: the generated 100,000-node, 400,000-edge
# graph (bench/lineage.sh's shape) imported as a catalog into a release server,
# then one client asking depth-5 blast radius questions from random data
# sources, one request at a time on a kept-alive connection. Prints p50/p95/p99
# against the target (HTTP query p95 < 2 ms).
#   bench/lineage-http.sh [NODES] [EDGES] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
nodes=${1:-100000}
edges=${2:-400000}
requests=${3:-3000}
cargo build --quiet --release --bin tollgate
cargo build --quiet --release -p tollgate-lineage --no-default-features --features graph-bench --bin graph_bench
bin="$CARGO_TARGET_DIR/release/tollgate"
source scripts/lib/work-dir.sh

"$CARGO_TARGET_DIR/release/graph_bench" "$nodes" "$edges" --catalog "$work/graph.yaml"
start=$(date +%s.%N)
"$bin" --data-dir "$work/data" lineage import catalog "$work/graph.yaml"
echo "import: $(echo "$(date +%s.%N) - $start" | bc) s"
key=$("$bin" --data-dir "$work/data" keys create --role security --name bench 2> /dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break
  sleep 0.1
done

PORT=$port KEY=$key NODES=$nodes REQUESTS=$requests python3 - <<'PY'
import http.client, json, os, random, time
port, key = int(os.environ["PORT"]), os.environ["KEY"]
sources = int(int(os.environ["NODES"]) * 0.2)
random.seed(42)
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": f"Bearer {key}"}
def ask(path):
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    assert response.status == 200, (response.status, body[:200])
    return elapsed, body
for _ in range(100):  # warm-up
    ask(f"/api/v1/lineage/downstream?name=n{random.randrange(sources)}&depth=5&limit=10000")
times, sizes = [], []
for _ in range(int(os.environ["REQUESTS"])):
    elapsed, body = ask(f"/api/v1/lineage/downstream?name=n{random.randrange(sources)}&depth=5&limit=10000")
    times.append(elapsed)
    sizes.append(len(json.loads(body)["nodes"]))
times.sort()
pct = lambda t, p: t[int((len(t) - 1) * p / 100)] * 1000
print(f"HTTP depth-5 blast radius: p50 {pct(times, 50):.3f} ms  p95 {pct(times, 95):.3f} ms  "
      f"p99 {pct(times, 99):.3f} ms ({sum(sizes) // len(sizes)} nodes per answer on average; "
      f"target p95 < 2 ms)")
# The same traversal answering ten nodes: what the answer's size costs.
small = sorted(ask(f"/api/v1/lineage/downstream?name=n{random.randrange(sources)}&depth=5&limit=10")[0]
               for _ in range(int(os.environ["REQUESTS"])))
print(f"same, answering 10 nodes:  p50 {pct(small, 50):.3f} ms  p95 {pct(small, 95):.3f} ms")
PY
