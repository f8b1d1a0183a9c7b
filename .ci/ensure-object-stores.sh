#!/usr/bin/env bash
# Starts the object stores the lake tests write to, unless they already answer:
# Azurite (npm, pinned in .ci/azurite/package-lock.json) for Azure Blob on
# 127.0.0.1:10000 and moto's server (PyPI, pinned in scripts/python-tools.txt)
# for S3 on 127.0.0.1:5000; then makes the container and the bucket the tests
# name (TOLLGATE_TEST_AZURE_LAKE, TOLLGATE_TEST_S3_LAKE, set by .ci/run).
# Both run until the machine stops; their data is under $TMPDIR. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-python-tools.sh

answers() { curl -s -o /dev/null --max-time 2 "$1"; }
wait_for() {
  for _ in $(seq 150); do answers "$1" && return 0; sleep 0.2; done
  echo "$2 did not start; its log: $3" >&2
  tail -n 20 "$3" >&2 || true
  return 1
}

if ! answers http://127.0.0.1:10000/; then
  if [ ! -x .ci/azurite/node_modules/.bin/azurite-blob ]; then
    echo "--- npm ci (azurite)"
    (cd .ci/azurite && npm ci --no-audit --no-fund --loglevel=error)
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-azurite.XXXXXX")
  # --disableTelemetry: it otherwise tries to reach an outside host;
  # --skipApiVersionCheck: object_store speaks a newer API version.
  nohup .ci/azurite/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort 10000 \
    --location "$dir" --disableTelemetry --skipApiVersionCheck --loose \
    > "$dir/azurite.log" 2>&1 &
  wait_for http://127.0.0.1:10000/ Azurite "$dir/azurite.log"
fi
if ! answers http://127.0.0.1:5000/; then
  log=$(mktemp "${TMPDIR:-/tmp}/tollgate-moto.XXXXXX.log")
  nohup moto_server -H 127.0.0.1 -p 5000 > "$log" 2>&1 &
  wait_for http://127.0.0.1:5000/ "moto server" "$log"
fi

python3 - <<'PY'
import os, urllib.parse
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
import boto3

# Azurite's well-known development account.
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
service = BlobServiceClient.from_connection_string(conn)
for var in ("TOLLGATE_TEST_AZURE_LAKE", "TOLLGATE_CI_AZURE_LAKE"):
    if var in os.environ:
        try:
            service.create_container(urllib.parse.urlparse(os.environ[var]).netloc)
        except ResourceExistsError:
            pass
s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT", "http://127.0.0.1:5000"),
                  region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
if "TOLLGATE_TEST_S3_LAKE" in os.environ:
    s3.create_bucket(Bucket=urllib.parse.urlparse(os.environ["TOLLGATE_TEST_S3_LAKE"]).netloc)
PY
echo "Azurite on 127.0.0.1:10000, moto on 127.0.0.1:5000"
