#!/usr/bin/env bash
# The real OpenTelemetry Python SDK (opentelemetry-sdk with the OTLP/HTTP
# exporter, PyPI), pointed at `tollgate serve` with OTEL_EXPORTER_OTLP_ENDPOINT
# and OTEL_EXPORTER_OTLP_HEADERS, sends an agent trace (invoke_agent ->
# execute_tool -> a database read, and a chat that goes straight to
# api.openai.com) and token metrics, cumulative and delta. A second and third
# trace use OpenInference's and OpenLLMetry's attribute names, taken from their
# semantic-conventions packages' constants. The lake, the lineage graph and
# the bypass findings must then show them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
bash scripts/install-python-tools.sh
source scripts/lib/work-dir.sh
tg() { "$bin" --data-dir "$work/data" --config "$work/tollgate.toml" "$@"; }

cat > "$work/tollgate.toml" <<'EOF'
[lineage]
gateway_hosts = ["apim-contoso.azure-api.net"]
EOF
ingest_key=$(tg keys create --role ingest --name otel-sdk 2> /dev/null)
security_key=$(tg keys create --role security --name analyst 2> /dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tg serve --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break
  sleep 0.1
done

status=0
TOLLGATE_URL="http://127.0.0.1:$port" SECURITY_KEY="$security_key" \
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port" \
OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$ingest_key" \
python3 - <<'PY' || status=$?
import json, os, time, urllib.error, urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes as OI
from opentelemetry.semconv_ai import LLMRequestTypeValues, SpanAttributes as OL, TraceloopSpanKindValues

def provider(service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return p

# The GenAI semantic conventions: an agent, its tool reading a database, and
# a chat that bypasses the gateway.
genai = provider("claims-bot")
tracer = genai.get_tracer("claims-bot")
with tracer.start_as_current_span("invoke_agent claims-triage", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "claims-triage"}) as agent:
    genai_trace = format(agent.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("execute_tool lookup-policy", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup-policy"}):
        with tracer.start_as_current_span("SELECT claims.policies", kind=SpanKind.CLIENT, attributes={
                "db.system.name": "postgresql", "db.namespace": "claims"}):
            pass
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "server.address": "api.openai.com",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1024}):
        pass
    with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "azure.ai.openai",
            "gen_ai.request.model": "gpt-4o", "server.address": "apim-contoso.azure-api.net",
            "gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 100}):
        pass
genai.shutdown()

# OpenInference's names, from its constants.
oi = provider("hr-helper")
tracer = oi.get_tracer("hr-helper")
with tracer.start_as_current_span("agent", attributes={
        OI.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.AGENT.value, OI.AGENT_NAME: "hr-helper"}):
    with tracer.start_as_current_span("tool", attributes={
            OI.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.TOOL.value,
            OI.TOOL_NAME: "employee-search", "db.system": "mssql", "db.name": "hr-employee-db"}):
        pass
    with tracer.start_as_current_span("llm", attributes={
            OI.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.LLM.value,
            OI.LLM_MODEL_NAME: "gpt-4o", OI.LLM_TOKEN_COUNT_PROMPT: 800,
            OI.LLM_TOKEN_COUNT_COMPLETION: 120, OI.LLM_TOKEN_COUNT_TOTAL: 920,
            "server.address": "apim-contoso.azure-api.net"}):
        pass
oi.shutdown()

# OpenLLMetry's names, from its constants: only prompt and total tokens.
ol = provider("support-bot")
tracer = ol.get_tracer("support-bot")
with tracer.start_as_current_span("support.agent", attributes={
        OL.TRACELOOP_SPAN_KIND: TraceloopSpanKindValues.AGENT.value,
        OL.TRACELOOP_ENTITY_NAME: "support-agent"}):
    with tracer.start_as_current_span("openai.chat", attributes={
            OL.LLM_REQUEST_TYPE: LLMRequestTypeValues.CHAT.value, OL.LLM_SYSTEM: "openai",
            OL.LLM_REQUEST_MODEL: "gpt-4o-mini", OL.LLM_USAGE_PROMPT_TOKENS: 90,
            OL.LLM_USAGE_TOTAL_TOKENS: 130, "server.address": "contoso-aoai.openai.azure.com"}):
        pass
ol.shutdown()

# Token metrics: the SDK's default (cumulative) and delta temporality.
for temporality, service in ((AggregationTemporality.CUMULATIVE, "metrics-cumulative"),
                             (AggregationTemporality.DELTA, "metrics-delta")):
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(preferred_temporality={Histogram: temporality}),
        export_interval_millis=3_600_000)
    meters = MeterProvider(metric_readers=[reader],
                           resource=Resource.create({"service.name": service}))
    usage = meters.get_meter("agent").create_histogram("gen_ai.client.token.usage", unit="{token}")
    for tokens, kind in ((1200, "input"), (300, "output"), (800, "input")):
        usage.record(tokens, {"gen_ai.token.type": kind, "gen_ai.operation.name": "chat",
                              "gen_ai.request.model": "gpt-4o"})
    meters.shutdown()

url = os.environ["TOLLGATE_URL"]
def call(path, body=None):
    request = urllib.request.Request(f"{url}{path}", data=body and json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {os.environ['SECURITY_KEY']}",
                 "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))
def sql(query):
    return call("/api/v1/sql", {"sql": query})["rows"]

spans = sql("SELECT service_name, operation, agent, tool, model, input_tokens, output_tokens, "
            "token_counts, convention, data_namespace FROM genai_spans ORDER BY service_name, time")
print(json.dumps(spans, indent=1))
assert len(spans) == 9, spans
chat = [s for s in spans if s["service_name"] == "claims-bot" and s["model"] == "gpt-4o-mini"][0]
assert (chat["agent"], chat["input_tokens"], chat["output_tokens"]) == ("claims-triage", 1200, 300), chat
tool = [s for s in spans if s["tool"] == "lookup-policy"][0]
assert (tool["agent"], tool["data_namespace"]) == ("claims-triage", "claims"), tool
llm = [s for s in spans if s["convention"] == "openinference" and s["operation"] == "chat"][0]
assert (llm["agent"], llm["input_tokens"], llm["output_tokens"]) == ("hr-helper", 800, 120), llm
ollm = [s for s in spans if s["convention"] == "openllmetry" and s["operation"] == "chat"][0]
assert (ollm["agent"], ollm["output_tokens"], ollm["token_counts"]) == ("support-agent", 40, "estimated"), ollm

metrics = sql("SELECT metric, value, value_count FROM token_metrics ORDER BY metric")
print(json.dumps(metrics, indent=1))
assert [(m["metric"], m["value"], m["value_count"]) for m in metrics] == [
    ("completion", 300.0, 1), ("completion_cumulative", 300.0, 1),
    ("prompt", 2000.0, 2), ("prompt_cumulative", 2000.0, 2)], metrics

# Lineage and bypass findings are derived after the answer: wait for them.
def downstream_of_claims():
    try:
        return [n["name"] for n in call("/api/v1/lineage/downstream?name=claims")["nodes"]]
    except urllib.error.HTTPError:
        return []
for _ in range(100):
    found = call("/api/v1/lineage/bypass")
    down = downstream_of_claims()
    if len(found) == 2 and "claims-triage" in down:
        break
    time.sleep(0.1)
print(json.dumps(found, indent=1))
assert [(f["server_address"], f["agent"]) for f in found] == [
    ("api.openai.com", "claims-triage"), ("contoso-aoai.openai.azure.com", "support-agent")], found
assert found[0]["trace_id"] == genai_trace, found
assert found[0]["input_tokens"] == 1200, found
assert "lookup-policy" in down and "claims-triage" in down, down
print("the OpenTelemetry SDK's traces and metrics are in the lake, the graph and the findings")
PY
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -50 "$work/serve.log" >&2
fi
exit "$status"
