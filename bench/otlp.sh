#!/usr/bin/env bash
# OTLP receiver benchmark (not a test): `tollgate serve` (release build) takes
# N spans as OTLP/HTTP protobuf exports of B spans each (agent traces of the
# realistic estate: invoke_agent -> execute_tool -> chat, 300 agents, 120
# tools, 5000 users' services), sent by C concurrent clients; then, in the same
# run and server, the same number of records as canonical JSON-lines pushes of
# B lines to /api/v1/ingest. Prints spans/s and records/s (the anchor: push
# ingest on the same machine) and each request's latency (p50, p99). Both
# streams are live telemetry: times move forward through one day.
# The bodies are built before the clock starts, with the exporter's own
# protobuf classes (opentelemetry-proto, PyPI), so the client costs little.
#
#   bench/otlp.sh [--spans 200000] [--batch 512] [--clients 2]
set -euo pipefail
cd "$(dirname "$0")/.."

spans=200000
batch=512
clients=2
while [ $# -gt 0 ]; do
  case "$1" in
    --spans) spans=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
cargo build --release --locked --quiet --bin tollgate
bin="$CARGO_TARGET_DIR/release/tollgate"
bash scripts/install-python-tools.sh
source scripts/lib/work-dir.sh
now="2026-10-31T23:30:00Z"
tg() { "$bin" --data-dir "$work/data" --now "$now" "$@"; }
key=$(tg keys create --role ingest --name bench 2> /dev/null | tail -n 1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NO_COLOR=1 TOLLGATE_LOG=warn "$bin" --data-dir "$work/data" --now "$now" \
  serve --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break
  sleep 0.1
done

PORT="$port" KEY="$key" SPANS="$spans" BATCH="$batch" CLIENTS="$clients" python3 - <<'PY'
import concurrent.futures, http.client, json, os, random, statistics, time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

port, key = int(os.environ["PORT"]), os.environ["KEY"]
total, batch, clients = int(os.environ["SPANS"]), int(os.environ["BATCH"]), int(os.environ["CLIENTS"])
rng = random.Random(7)
start_ns = 1_791_208_800_000_000_000  # 2026-10-05T14:00:00Z
clock_ns = start_ns
agents = [f"agent-{i:03}" for i in range(300)]
tools = [f"tool-{i:03}" for i in range(120)]
models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "text-embedding-3-large"]
hosts = ["apim-contoso.azure-api.net"] * 19 + ["api.openai.com"]

def kv(k, v):
    return KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v))

def trace(n):
    """Spans of one agent run: invoke_agent, then tool and chat children."""
    tid = rng.randbytes(16)
    root = rng.randbytes(8)
    # Live telemetry: runs start one after another through one day.
    global clock_ns
    clock_ns += 40_000_000
    t = clock_ns
    agent = rng.choice(agents)
    out = [Span(trace_id=tid, span_id=root, name="invoke_agent", start_time_unix_nano=t,
                end_time_unix_nano=t + 4_000_000_000,
                attributes=[kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", agent)])]
    for i in range(n - 1):
        child = rng.randbytes(8)
        if i % 2 == 0:
            attrs = [kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", rng.choice(tools)),
                     kv("db.namespace", f"db-{rng.randrange(40)}")]
        else:
            attrs = [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "azure.ai.openai"),
                     kv("gen_ai.request.model", rng.choice(models)), kv("server.address", rng.choice(hosts)),
                     kv("gen_ai.usage.input_tokens", rng.randrange(50, 4000)),
                     kv("gen_ai.usage.output_tokens", rng.randrange(10, 800))]
        out.append(Span(trace_id=tid, span_id=child, parent_span_id=root, name="child",
                        start_time_unix_nano=t + (i + 1) * 1_000_000, end_time_unix_nano=t + (i + 2) * 1_000_000,
                        attributes=attrs))
    return out

bodies = []
for b in range(total // batch):
    spans = []
    while len(spans) < batch:
        spans.extend(trace(min(5, batch - len(spans))))
    service = f"svc-{rng.randrange(5000):04}"
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", service)]),
        scope_spans=[ScopeSpans(spans=spans)])])
    bodies.append(request.SerializeToString())
sent = len(bodies) * batch
mb = sum(map(len, bodies)) / 1e6

def lines_for(b):
    out = []
    for i in range(batch):
        n = b * batch + i
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ns // 10**9 + n // 100))
        out.append(json.dumps({"request_id": f"r-{n}", "time": f"{when}Z", "status_code": 200,
            "subscription": f"sub-{n % 400}", "agent": agents[n % 300], "user_id": f"u-{n % 5000}",
            "deployment": models[n % 5], "model": models[n % 5], "prompt_tokens": 100, "completion_tokens": 20}))
    return ("\n".join(out) + "\n").encode()
pushes = [lines_for(b) for b in range(len(bodies))]

def run(path, content_type, payloads):
    latencies = []
    def send(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in chunk:
            t0 = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": content_type, "Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            answer = response.read()
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                raise SystemExit(f"{path}: {response.status} {answer[:300]!r}")
    chunks = [payloads[i::clients] for i in range(clients)]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    return elapsed, p(0.5), p(0.99)

otlp = run("/v1/traces", "application/x-protobuf", bodies)
push = run("/api/v1/ingest?format=canonical", "application/x-ndjson", pushes)
print(f"{sent} spans in {len(bodies)} exports of {batch} ({mb:.1f} MB protobuf), {clients} clients")
print(f"otlp: {sent / otlp[0]:,.0f} spans/s ({otlp[0]:.2f} s), request p50 {otlp[1]:.0f} ms, p99 {otlp[2]:.0f} ms")
print(f"push: {sent / push[0]:,.0f} records/s ({push[0]:.2f} s), request p50 {push[1]:.0f} ms, p99 {push[2]:.0f} ms")
print(f"otlp / push throughput: {push[0] / otlp[0]:.2f}")
PY
echo "spans in the lake: $(tg sql 'SELECT COUNT(*) AS n FROM genai_spans' --format csv | tail -1)"
