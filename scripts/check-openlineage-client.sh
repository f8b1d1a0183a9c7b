#!/usr/bin/env bash
# The real OpenLineage Python client (openlineage-python, PyPI) sends events to
# `tollgate serve` with its HTTP transport (Bearer key, gzip): an agent reading
# a Highly Confidential table, one event at a time; the graph must then show the
# agent labelled Highly Confidential, with the path from the table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}
bash scripts/install-python-tools.sh
source scripts/lib/work-dir.sh
tg() { "$bin" --data-dir "$work/data" "$@"; }

ingest_key=$(tg keys create --role ingest --name openlineage-python 2> /dev/null)
security_key=$(tg keys create --role security --name analyst 2> /dev/null)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break
  sleep 0.1
done

status=0
TOLLGATE_URL="http://127.0.0.1:$port" INGEST_KEY="$ingest_key" SECURITY_KEY="$security_key" \
python3 - <<'PY' || status=$?
import json, os, sys, uuid, urllib.request
from datetime import datetime, timezone

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import job_type_job, tags_dataset
from openlineage.client.transport.http import (
    ApiKeyTokenProvider, HttpCompression, HttpConfig, HttpTransport)

url = os.environ["TOLLGATE_URL"]
client = OpenLineageClient(transport=HttpTransport(HttpConfig(
    url=url, endpoint="api/v1/lineage",
    auth=ApiKeyTokenProvider({"apiKey": os.environ["INGEST_KEY"]}),
    compression=HttpCompression.GZIP)))
producer = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"
agent = Job(namespace="contoso", name="claims-triage-agent", facets={
    "jobType": job_type_job.JobTypeJobFacet(
        processingType="SERVICE", integration="CUSTOM", jobType="AGENT", producer=producer)})
table = InputDataset(namespace="postgres://claims-db:5432", name="claims.public.policyholders",
    facets={"tags": tags_dataset.TagsDatasetFacet(tags=[
        tags_dataset.TagsDatasetFacetFields(key="sensitivity", value="Highly Confidential")],
        producer=producer)})
summary = OutputDataset(namespace="s3://triage", name="summaries")
run = Run(runId=str(uuid.uuid4()))
for state in (RunState.START, RunState.COMPLETE):
    client.emit(RunEvent(eventType=state, eventTime=datetime.now(timezone.utc).isoformat(),
        producer=producer, run=run, job=agent, inputs=[table], outputs=[summary]))

request = urllib.request.Request(f"{url}/api/v1/lineage/why?name=claims-triage-agent",
    headers={"Authorization": f"Bearer {os.environ['SECURITY_KEY']}"})
why = json.load(urllib.request.urlopen(request))
print(json.dumps(why, indent=1))
assert why["node"]["kind"] == "agent", why
assert why["node"]["effective_label"] == "Highly Confidential", why
assert why["path"][0]["node"]["name"] == "claims.public.policyholders", why
assert why["path"][1]["via"]["origin"] == "openlineage", why
assert why["path"][1]["via"]["calls"] == 2, why
request = urllib.request.Request(f"{url}/api/v1/lineage/downstream?name=claims-triage-agent",
    headers={"Authorization": f"Bearer {os.environ['SECURITY_KEY']}"})
down = json.load(urllib.request.urlopen(request))
assert [n["name"] for n in down["nodes"]] == ["summaries"], down
print("openlineage-python's events are in the graph")
PY
if [ "$status" -ne 0 ]; then
  echo "--- server log" >&2
  tail -50 "$work/serve.log" >&2
fi
exit "$status"
