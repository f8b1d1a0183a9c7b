//! DLP and content-safety hits (the lake's `security_hits` view) next to the
//! lineage of the agent that caused them: hits counted by day and by agent,
//! policy, label, severity or action; and for one hit, the labelled nodes
//! upstream of its agent with the path that proves each label.

use std::str::FromStr;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::{col, lit};
use serde::{Deserialize, Serialize};
use tollgate_store::Store;

use crate::query::{Bounds, Direction};
use crate::view::{Explained, NodeSummary};
use crate::{LineageError, LineageGraph, Result};

/// What hits are counted by (a column of `security_hits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitGrouping {
    Agent,
    Policy,
    Label,
    Severity,
    Action,
}

impl HitGrouping {
    fn column(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Policy => "policy",
            Self::Label => "label",
            Self::Severity => "severity",
            Self::Action => "action",
        }
    }
}

impl FromStr for HitGrouping {
    type Err = LineageError;
    fn from_str(s: &str) -> Result<Self> {
        [
            Self::Agent,
            Self::Policy,
            Self::Label,
            Self::Severity,
            Self::Action,
        ]
        .into_iter()
        .find(|g| g.column() == s)
        .ok_or_else(|| {
            LineageError::Argument(format!(
                "by: {s:?} is not agent, policy, label, severity or action"
            ))
        })
    }
}

/// Hits of one day and one value of the grouping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HitCount {
    pub day: String,
    /// The grouping's value (`null` when the hit does not say).
    pub key: Option<String>,
    pub hits: i64,
    /// Of them, blocked (`block` or `block_with_override`).
    pub blocked: i64,
}

/// Counts hits per UTC day and `by`, optionally within `[from, to)` (RFC 3339).
pub async fn hit_counts(
    store: &Store,
    by: HitGrouping,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<HitCount>> {
    // Within what the query engine's nanosecond times hold (1677 to 2262),
    // with room: a filter of year 0001 must be the asker's 400, not a failed
    // query.
    const YEARS: std::ops::RangeInclusive<i32> = 1970..=2200;
    for (name, value) in [("from", from), ("to", to)] {
        if let Some(t) = value {
            match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(time) if YEARS.contains(&chrono::Datelike::year(&time.to_utc())) => {}
                Ok(_) => {
                    return Err(LineageError::Argument(format!(
                        "{name}: {t:?} is outside the years {} to {}",
                        YEARS.start(),
                        YEARS.end()
                    )));
                }
                Err(_) => {
                    return Err(LineageError::Argument(format!(
                        "{name}: {t:?} is not an RFC 3339 time"
                    )));
                }
            }
        }
    }
    // Only checked values reach the text: the column is one of five names and
    // the times parsed as RFC 3339.
    let mut filter = String::new();
    if let Some(t) = from {
        filter.push_str(&format!(" AND time >= TIMESTAMP '{t}'"));
    }
    if let Some(t) = to {
        filter.push_str(&format!(" AND time < TIMESTAMP '{t}'"));
    }
    let column = by.column();
    let sql = format!(
        "SELECT CAST(date_trunc('day', time) AS VARCHAR) AS day, {column} AS key, \
         COUNT(*) AS hits, \
         SUM(CASE WHEN action IN ('block', 'block_with_override') THEN 1 ELSE 0 END) AS blocked \
         FROM security_hits WHERE true{filter} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"
    );
    let result = store.sql_read_only(&sql).await?;
    let mut out = Vec::new();
    // Lake strings come back as views; read them as plain strings.
    let utf8 = |a: &datafusion::arrow::array::ArrayRef| {
        datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Utf8)
            .map_err(|e| LineageError::Store(datafusion::error::DataFusionError::from(e).into()))
    };
    for batch in &result.batches {
        let (day, key) = (utf8(batch.column(0))?, utf8(batch.column(1))?);
        let (day, key) = (day.as_string::<i32>(), key.as_string::<i32>());
        let hits = batch.column(2).as_primitive::<Int64Type>();
        let blocked = batch.column(3).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            out.push(HitCount {
                day: day.value(row).get(..10).unwrap_or_default().to_string(),
                key: (!key.is_null(row)).then(|| key.value(row).to_string()),
                hits: hits.value(row),
                blocked: blocked.value(row),
            });
        }
    }
    Ok(out)
}

/// Labelled sources listed for one hit at most, nearest first.
const MAX_SOURCES: usize = 200;

/// One hit with the lineage around it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HitContext {
    /// The hit's row of `security_hits`, every column.
    #[schema(value_type = Object)]
    pub hit: serde_json::Value,
    /// The agent's node, when the graph knows it.
    pub agent: Option<NodeSummary>,
    /// Labelled nodes upstream of the agent, each with the path from where its
    /// label came to the agent.
    pub sources: Vec<Explained>,
    /// The resource the hit names, when the graph knows it.
    pub resource: Option<Explained>,
    /// An upstream walk hit its depth or size bound.
    pub truncated: bool,
}

/// The hit `hit_id` and the labelled lineage upstream of its agent.
pub async fn hit_context(store: &Store, graph: &LineageGraph, hit_id: &str) -> Result<HitContext> {
    let ctx = store.query_session().await?;
    let frame = ctx
        .table("security_hits")
        .await
        .map_err(tollgate_store::StoreError::from)?
        .filter(col("hit_id").eq(lit(hit_id)))
        .map_err(tollgate_store::StoreError::from)?
        .limit(0, Some(1))
        .map_err(tollgate_store::StoreError::from)?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame
        .collect()
        .await
        .map_err(tollgate_store::StoreError::from)?;
    let Some(hit) = tollgate_store::output::json_rows(&schema, &batches)?
        .into_iter()
        .next()
    else {
        return Err(LineageError::NotFound(format!(
            "no hit {hit_id:?} in security_hits"
        )));
    };
    let text = |field: &str| hit.get(field).and_then(|v| v.as_str()).map(str::to_string);
    let agent = text("agent").and_then(|name| graph.resolve(None, &name).ok());
    let mut sources = Vec::new();
    let mut truncated = false;
    if let Some(agent) = agent {
        let reached = graph.reach(
            agent,
            Direction::Upstream,
            &Bounds {
                depth: 10,
                kinds: vec![],
                limit: 10_000,
            },
        );
        truncated = reached.truncated;
        let labelled: Vec<_> = reached
            .nodes
            .into_iter()
            .filter(|(n, _)| graph.node(*n).label.is_some())
            .collect();
        // Nearest first; a path search each, so bounded.
        truncated |= labelled.len() > MAX_SOURCES;
        for (node, _) in labelled.into_iter().take(MAX_SOURCES) {
            let path = graph.path_between(node, agent, 10).unwrap_or_default();
            sources.push(graph.explain_path(node, &path, crate::ANSWER_PATH_STEPS));
        }
    }
    let resource = match (text("resource_namespace"), text("resource_name")) {
        (Some(ns), Some(name)) => graph
            .find(&crate::NodeKey::new(ns, name))
            .map(|ix| graph.explain(ix)),
        _ => None,
    };
    Ok(HitContext {
        hit,
        agent: agent.map(|a| graph.summary(a)),
        sources,
        resource,
        truncated,
    })
}
