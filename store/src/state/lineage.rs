//! Lineage nodes and data-flow edges as stored, from every importer. Checked and
//! turned into a graph by `tollgate-lineage`; here they are rows.

use serde::Serialize;

use super::{NewAudit, StateDb, audit, begin_write, bump_version, on_pool};
use crate::Result;

/// A node as declared (labels as written).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct LineageNodeRow {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub owner: Option<String>,
    pub region: Option<String>,
    pub boundary: Option<String>,
    pub label: Option<String>,
    pub clearance: Option<String>,
    pub allowed_label: Option<String>,
    pub origin: String,
}

/// An edge with its endpoints' keys.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct LineageEdgeRow {
    pub from_namespace: String,
    pub from_name: String,
    pub to_namespace: String,
    pub to_name: String,
    pub kind: String,
    pub origin: String,
    pub blocked: bool,
    pub cap: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub calls: i64,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineageApplied {
    pub nodes: usize,
    pub edges: usize,
    /// Edges of the origin that the import no longer declares.
    pub edges_removed: usize,
    /// The `lineage` state version this import committed as.
    pub version: i64,
}

/// How an import treats what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineageMode {
    /// The import describes the whole of its origin (a catalog): declared nodes
    /// take its attributes as they are, and the origin's edges it no longer
    /// lists are removed.
    Replace,
    /// The import adds what it saw (events): a node it names keeps its kind
    /// and every attribute the import does not set.
    Merge,
    /// The whole of what its origin sees now (observed traffic, derived from
    /// the lake): nodes merged as [`LineageMode::Merge`], the origin's edges
    /// replaced as [`LineageMode::Replace`].
    Refresh,
}

/// A node upsert: both modes bind the same eleven columns.
macro_rules! node_upsert {
    ($on_conflict:literal) => {
        concat!(
            "INSERT INTO lineage_nodes (namespace, name, kind, owner, region, boundary, label, \
             clearance, allowed_label, origin, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (namespace, name) DO UPDATE SET ",
            $on_conflict
        )
    };
}
const NODE_REPLACE: &str = node_upsert!(
    "kind = excluded.kind, owner = excluded.owner, region = excluded.region, \
     boundary = excluded.boundary, label = excluded.label, clearance = excluded.clearance, \
     allowed_label = excluded.allowed_label, origin = excluded.origin, \
     updated_at = excluded.updated_at"
);
const NODE_MERGE: &str = node_upsert!(
    "owner = COALESCE(excluded.owner, lineage_nodes.owner), \
     region = COALESCE(excluded.region, lineage_nodes.region), \
     boundary = COALESCE(excluded.boundary, lineage_nodes.boundary), \
     label = COALESCE(excluded.label, lineage_nodes.label), \
     clearance = COALESCE(excluded.clearance, lineage_nodes.clearance), \
     allowed_label = COALESCE(excluded.allowed_label, lineage_nodes.allowed_label), \
     updated_at = excluded.updated_at"
);

const EDGE_SELECT: &str = "SELECT f.namespace AS from_namespace, f.name AS from_name, \
     t.namespace AS to_namespace, t.name AS to_name, e.kind, e.origin, e.blocked, e.cap, \
     e.first_seen, e.last_seen, e.calls \
     FROM lineage_edges e JOIN lineage_nodes f ON f.id = e.from_node \
     JOIN lineage_nodes t ON t.id = e.to_node ORDER BY e.id";

impl StateDb {
    /// Stores an import in one transaction (see [`LineageMode`]). An edge seen
    /// again adds its calls and widens its first/last seen (UTC RFC 3339 texts,
    /// which order as their times do).
    // Long, and on purpose: one transaction of plain writes in order, on both
    // backends through `on_pool!`; split up, each part would have to be generic
    // over sqlx's `Database` and its executor, which reads worse than the list.
    #[tracing::instrument(skip_all, fields(origin, nodes = nodes.len(), edges = edges.len()), err)]
    pub async fn apply_lineage(
        &self,
        origin: &str,
        nodes: &[LineageNodeRow],
        edges: &[LineageEdgeRow],
        mode: LineageMode,
        entry: &NewAudit,
    ) -> Result<LineageApplied> {
        let now = chrono::Utc::now().to_rfc3339();
        let mut applied = LineageApplied {
            nodes: nodes.len(),
            edges: edges.len(),
            edges_removed: 0,
            version: 0,
        };
        let node_sql = match mode {
            LineageMode::Replace => NODE_REPLACE,
            LineageMode::Merge | LineageMode::Refresh => NODE_MERGE,
        };
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            bump_version!(tx, crate::StateVersion::Lineage);
            for n in nodes {
                sqlx::query::<Db>(node_sql)
                    .bind(&n.namespace)
                    .bind(&n.name)
                    .bind(&n.kind)
                    .bind(&n.owner)
                    .bind(&n.region)
                    .bind(&n.boundary)
                    .bind(&n.label)
                    .bind(&n.clearance)
                    .bind(&n.allowed_label)
                    .bind(&n.origin)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
            }
            if mode != LineageMode::Merge {
                let removed = sqlx::query::<Db>("DELETE FROM lineage_edges WHERE origin = $1")
                    .bind(origin)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                applied.edges_removed = usize::try_from(removed)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(edges.len());
            }
            for e in edges {
                sqlx::query::<Db>(
                    "INSERT INTO lineage_edges (from_node, to_node, kind, origin, blocked, cap, \
                     first_seen, last_seen, calls) \
                     SELECT f.id, t.id, $5, $6, $7, $8, $9, $10, $11 \
                     FROM lineage_nodes f, lineage_nodes t \
                     WHERE f.namespace = $1 AND f.name = $2 AND t.namespace = $3 AND t.name = $4 \
                     ON CONFLICT (from_node, to_node, kind, origin) DO UPDATE SET \
                     blocked = excluded.blocked, cap = excluded.cap, \
                     first_seen = CASE WHEN lineage_edges.first_seen IS NULL \
                       OR excluded.first_seen < lineage_edges.first_seen \
                       THEN excluded.first_seen ELSE lineage_edges.first_seen END, \
                     last_seen = CASE WHEN lineage_edges.last_seen IS NULL \
                       OR excluded.last_seen > lineage_edges.last_seen \
                       THEN excluded.last_seen ELSE lineage_edges.last_seen END, \
                     calls = lineage_edges.calls + excluded.calls",
                )
                .bind(&e.from_namespace)
                .bind(&e.from_name)
                .bind(&e.to_namespace)
                .bind(&e.to_name)
                .bind(&e.kind)
                .bind(&e.origin)
                .bind(e.blocked)
                .bind(&e.cap)
                .bind(&e.first_seen)
                .bind(&e.last_seen)
                .bind(e.calls)
                .execute(&mut *tx)
                .await?;
            }
            audit!(tx, entry);
            applied.version =
                sqlx::query_scalar::<Db, i64>("SELECT version FROM state_versions WHERE name = $1")
                    .bind(crate::StateVersion::Lineage.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
        });
        Ok(applied)
    }

    /// Every node, in the order they were first stored.
    pub async fn lineage_nodes(&self) -> Result<Vec<LineageNodeRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, LineageNodeRow>(
                "SELECT namespace, name, kind, owner, region, boundary, label, clearance, \
                 allowed_label, origin FROM lineage_nodes ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every edge, in the order they were first stored.
    pub async fn lineage_edges(&self) -> Result<Vec<LineageEdgeRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, LineageEdgeRow>(EDGE_SELECT)
                .fetch_all(pool)
                .await?
        }))
    }
}
