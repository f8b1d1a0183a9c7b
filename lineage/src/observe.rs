//! Observed traffic as lineage. What gateways logged says which agents call
//! which tools and deployments, and which gateway serves which subscription;
//! these edges are derived from the lake (the hourly rollups for deployments,
//! the requests for tools), recomputed whole after ingest, and stored under the
//! `observed` origin with their call counts and first and last sightings.
//!
//! Edges point the way data flows, as every edge here does: tool -> agent
//! (`calls`), agent -> model deployment (`invokes`), deployment -> gateway
//! (`served_by`), gateway -> subscription (`serves`). A name the graph already
//! knows as a node of that kind (in any namespace, once) is that node, so
//! traffic joins the catalog; anything else becomes a node in the `observed`
//! namespace.

use std::collections::{BTreeMap, BTreeSet};

use tollgate_store::Store;
use tollgate_store::state::LineageApplied;

use crate::model::{Edge, Node, NodeKey, NodeKind, Origin};
use crate::{Import, LineageGraph, LineageMode, Result, Taxonomy, save_import};

/// The namespace of nodes that only traffic knows.
pub const OBSERVED_NAMESPACE: &str = "observed";

/// Recomputes the observed edges and stores them if they changed; `None`
/// when they did not (nothing written, no version bumped).
#[tracing::instrument(skip_all, err)]
pub async fn observe(
    store: &Store,
    graph: &LineageGraph,
    taxonomy: &Taxonomy,
    actor: &str,
) -> Result<Option<LineageApplied>> {
    let import = observed_import(store, graph).await?;
    if same_as_stored(graph, &import) {
        return Ok(None);
    }
    Ok(Some(
        save_import(&store.db, &import, taxonomy, actor, LineageMode::Refresh).await?,
    ))
}

type Key = (NodeKey, NodeKey, &'static str);

/// calls, first seen, last seen (µs).
pub(crate) type Seen = (u64, i64, i64);

async fn observed_import(store: &Store, graph: &LineageGraph) -> Result<Import> {
    let mut import = ImportBuilder::new(graph);
    for usage in store.observed_usage().await? {
        let seen = (
            u64::try_from(usage.requests).unwrap_or(0),
            usage.first_hour_us,
            usage.last_hour_us,
        );
        let deployment = match (&usage.backend, &usage.deployment) {
            (Some(b), Some(d)) => Some(import.node(&format!("{b}/{d}"), NodeKind::ModelDeployment)),
            _ => None,
        };
        let gateway = usage
            .gateway_id
            .as_deref()
            .map(|g| import.node(g, NodeKind::Gateway));
        if let (Some(agent), Some(deployment)) = (&usage.agent, &deployment) {
            let agent = import.node(agent, NodeKind::Agent);
            import.add(agent, deployment.clone(), "invokes", seen);
        }
        if let (Some(deployment), Some(gateway)) = (&deployment, &gateway) {
            import.add(deployment.clone(), gateway.clone(), "served_by", seen);
        }
        if let (Some(gateway), Some(subscription)) = (&gateway, &usage.subscription) {
            let subscription = import.node(subscription, NodeKind::Subscription);
            import.add(gateway.clone(), subscription, "serves", seen);
        }
    }
    for calls in store.tool_calls().await? {
        let from = import.node(&calls.tool, NodeKind::McpTool);
        let to = import.node(&calls.agent, NodeKind::Agent);
        let seen = (
            u64::try_from(calls.calls).unwrap_or(0),
            calls.first_us,
            calls.last_us,
        );
        import.add(from, to, "calls", seen);
    }
    Ok(import.finish(Origin::Observed))
}

/// Nodes and edges of an import drawn from telemetry, with their calls and
/// sightings summed per edge.
pub(crate) struct ImportBuilder<'g> {
    // Looked up once per traffic row: indexed by name here, not scanned.
    by_name: std::collections::HashMap<&'g str, Vec<&'g Node>>,
    nodes: BTreeMap<NodeKey, NodeKind>,
    edges: BTreeMap<Key, Seen>,
}

impl<'g> ImportBuilder<'g> {
    pub(crate) fn new(graph: &'g LineageGraph) -> Self {
        let mut by_name: std::collections::HashMap<&str, Vec<&Node>> = Default::default();
        for ix in graph.nodes() {
            let n = graph.node(ix);
            by_name.entry(n.key.name.as_str()).or_default().push(n);
        }
        ImportBuilder {
            by_name,
            nodes: BTreeMap::new(),
            edges: BTreeMap::new(),
        }
    }

    /// The node a name stands for: the graph's only node of that kind and
    /// name, else one in the `observed` namespace.
    pub(crate) fn node(&mut self, name: &str, kind: NodeKind) -> NodeKey {
        let key = match self.by_name.get(name).map(Vec::as_slice) {
            Some([only]) if only.kind == kind => only.key.clone(),
            _ => NodeKey::new(OBSERVED_NAMESPACE, name),
        };
        self.nodes.entry(key.clone()).or_insert(kind);
        key
    }

    pub(crate) fn add(&mut self, from: NodeKey, to: NodeKey, kind: &'static str, seen: Seen) {
        let entry = self
            .edges
            .entry((from, to, kind))
            .or_insert((0, i64::MAX, i64::MIN));
        entry.0 += seen.0;
        entry.1 = entry.1.min(seen.1);
        entry.2 = entry.2.max(seen.2);
    }

    pub(crate) fn finish(self, origin: Origin) -> Import {
        let time = |us: i64| {
            chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        };
        Import {
            origin,
            nodes: self
                .nodes
                .into_iter()
                .map(|(key, kind)| Node::new(key, kind))
                .collect(),
            edges: self
                .edges
                .into_iter()
                .map(|((from, to, kind), (calls, first, last))| {
                    let mut edge = Edge::new(kind, origin);
                    edge.calls = calls;
                    edge.first_seen = time(first);
                    edge.last_seen = time(last);
                    (from, to, edge)
                })
                .collect(),
        }
    }
}

/// Whether the graph already holds exactly the import's edges and counts
/// under its origin.
pub(crate) fn same_as_stored(graph: &LineageGraph, import: &Import) -> bool {
    let stored: BTreeSet<(NodeKey, NodeKey, String, u64)> = graph
        .edges()
        .filter(|e| graph.edge(*e).origin == import.origin)
        .map(|e| {
            let (a, b) = graph.endpoints(e);
            let edge = graph.edge(e);
            (
                graph.node(a).key.clone(),
                graph.node(b).key.clone(),
                edge.kind.clone(),
                edge.calls,
            )
        })
        .collect();
    let new: BTreeSet<(NodeKey, NodeKey, String, u64)> = import
        .edges
        .iter()
        .map(|(a, b, e)| (a.clone(), b.clone(), e.kind.clone(), e.calls))
        .collect();
    stored == new
}
