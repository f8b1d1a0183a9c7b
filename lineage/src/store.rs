//! Between the graph and the state database: an import becomes rows, rows
//! become a graph. Labels are stored as written and ranked on load, so a changed
//! taxonomy applies to everything already imported.

use tollgate_store::StateDb;
use tollgate_store::state::{
    LineageApplied, LineageEdgeRow, LineageMode, LineageNodeRow, NewAudit,
};

use crate::label::Taxonomy;
use crate::model::{Edge, Flow, Label, Node, NodeKey};
use crate::{Import, LineageError, LineageGraph, Result};

/// Stores an import: a catalog replaces what the catalog said
/// ([`LineageMode::Replace`]), other origins add to it ([`LineageMode::Merge`]).
#[tracing::instrument(skip_all, fields(origin = import.origin.as_str()), err)]
pub async fn save_import(
    db: &StateDb,
    import: &Import,
    taxonomy: &Taxonomy,
    actor: &str,
    mode: LineageMode,
) -> Result<LineageApplied> {
    let nodes: Vec<LineageNodeRow> = import
        .nodes
        .iter()
        .map(|n| LineageNodeRow {
            namespace: n.key.namespace.clone(),
            name: n.key.name.clone(),
            kind: n.kind.as_str().to_string(),
            owner: n.owner.clone(),
            region: n.region.clone(),
            boundary: n.boundary.clone(),
            label: n.label.as_ref().map(|l| l.name.clone()),
            clearance: n.clearance.as_ref().map(|l| l.name.clone()),
            allowed_label: n.allowed_label.as_ref().map(|l| l.name.clone()),
            origin: import.origin.as_str().to_string(),
        })
        .collect();
    let edges: Vec<LineageEdgeRow> = import
        .edges
        .iter()
        .map(|(from, to, e)| LineageEdgeRow {
            from_namespace: from.namespace.clone(),
            from_name: from.name.clone(),
            to_namespace: to.namespace.clone(),
            to_name: to.name.clone(),
            kind: e.kind.clone(),
            origin: e.origin.as_str().to_string(),
            blocked: e.flow == Flow::Blocked,
            cap: match e.flow {
                Flow::Cap(r) => Some(taxonomy.name(r).to_string()),
                _ => None,
            },
            first_seen: e.first_seen.clone(),
            last_seen: e.last_seen.clone(),
            calls: i64::try_from(e.calls).unwrap_or(i64::MAX),
        })
        .collect();
    let entry = NewAudit::new(
        actor,
        "lineage.import",
        format!("lineage:{}", import.origin.as_str()),
    )
    .after(&serde_json::json!({"nodes": nodes.len(), "edges": edges.len()}));
    Ok(db
        .apply_lineage(import.origin.as_str(), &nodes, &edges, mode, &entry)
        .await?)
}

/// The whole stored graph, propagated.
#[tracing::instrument(skip_all, err)]
pub async fn load_graph(db: &StateDb, taxonomy: Taxonomy) -> Result<LineageGraph> {
    let (node_rows, edge_rows) = (db.lineage_nodes().await?, db.lineage_edges().await?);
    let nodes = node_rows
        .into_iter()
        .map(|row| node_from_row(row, &taxonomy))
        .collect::<Result<Vec<_>>>()?;
    let edges = edge_rows
        .into_iter()
        .map(|row| edge_from_row(row, &taxonomy))
        .collect::<Result<Vec<_>>>()?;
    LineageGraph::build(taxonomy, nodes, edges)
}

fn stored(what: String, e: LineageError) -> LineageError {
    LineageError::Stored(format!("{what}: {e}"))
}

fn label(value: Option<String>, taxonomy: &Taxonomy, what: &str) -> Result<Option<Label>> {
    value
        .map(|name| {
            let rank = taxonomy
                .rank(&name)
                .map_err(|e| stored(what.to_string(), e))?;
            Ok(Label { name, rank })
        })
        .transpose()
}

fn node_from_row(row: LineageNodeRow, taxonomy: &Taxonomy) -> Result<Node> {
    let key = NodeKey::new(row.namespace, row.name);
    let what = format!("node {key}");
    let kind = row.kind.parse().map_err(|e| stored(what.clone(), e))?;
    let mut node = Node::new(key, kind);
    node.owner = row.owner;
    node.region = row.region;
    node.boundary = row.boundary;
    node.label = label(row.label, taxonomy, &what)?;
    node.clearance = label(row.clearance, taxonomy, &what)?;
    node.allowed_label = label(row.allowed_label, taxonomy, &what)?;
    Ok(node)
}

fn edge_from_row(row: LineageEdgeRow, taxonomy: &Taxonomy) -> Result<(NodeKey, NodeKey, Edge)> {
    let from = NodeKey::new(row.from_namespace, row.from_name);
    let to = NodeKey::new(row.to_namespace, row.to_name);
    let what = format!("edge {from} -> {to}");
    let mut edge = Edge::new(
        row.kind,
        row.origin.parse().map_err(|e| stored(what.clone(), e))?,
    );
    edge.flow = match (row.blocked, label(row.cap, taxonomy, &what)?) {
        (true, _) => Flow::Blocked,
        (false, Some(cap)) => Flow::Cap(cap.rank),
        (false, None) => Flow::Open,
    };
    edge.first_seen = row.first_seen;
    edge.last_seen = row.last_seen;
    edge.calls = u64::try_from(row.calls).unwrap_or(0);
    Ok((from, to, edge))
}
