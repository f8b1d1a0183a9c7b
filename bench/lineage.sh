#!/usr/bin/env bash
# The lineage graph benchmark: a generated layered graph (100,000 nodes and
# 400,000 edges unless told otherwise), release build of the graph alone.
# Prints full propagation, depth-5 blast radius p50/p95 and the incremental
# update after one new edge, each beside its target and the anchors measured
# on the same shape with networkx (0.64 s propagation, 0.57 ms depth-5 p95) and
# Postgres recursive CTEs (1.2-6.5 ms per query, what Marquez does).
#   bench/lineage.sh [NODES] [EDGES]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
cargo run --quiet --release -p tollgate-lineage --no-default-features --features graph-bench --bin graph_bench -- "${1:-100000}" "${2:-400000}"
