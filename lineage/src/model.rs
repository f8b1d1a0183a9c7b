//! What the graph holds: nodes with a kind and a stable key, and data-flow edges
//! with an origin and propagation controls.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::label::Rank;
use crate::{LineageError, Result};

/// What a node is.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    DataSource,
    Api,
    McpServer,
    McpTool,
    Agent,
    ModelDeployment,
    Model,
    Gateway,
    Subscription,
    Project,
    Connection,
    /// An OpenLineage job that is neither an agent nor a tool (a batch step).
    Process,
}

impl NodeKind {
    pub const ALL: [NodeKind; 12] = [
        Self::DataSource,
        Self::Api,
        Self::McpServer,
        Self::McpTool,
        Self::Agent,
        Self::ModelDeployment,
        Self::Model,
        Self::Gateway,
        Self::Subscription,
        Self::Project,
        Self::Connection,
        Self::Process,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DataSource => "data_source",
            Self::Api => "api",
            Self::McpServer => "mcp_server",
            Self::McpTool => "mcp_tool",
            Self::Agent => "agent",
            Self::ModelDeployment => "model_deployment",
            Self::Model => "model",
            Self::Gateway => "gateway",
            Self::Subscription => "subscription",
            Self::Project => "project",
            Self::Connection => "connection",
            Self::Process => "process",
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeKind {
    type Err = LineageError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| LineageError::UnknownKind(s.to_string()))
    }
}

/// A node's stable identity, OpenLineage style.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeKey {
    pub namespace: String,
    pub name: String,
}

impl NodeKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.namespace, self.name)
    }
}

/// A label as written (a sublabel keeps its full text) and its rank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    pub name: String,
    pub rank: Rank,
}

/// A node and what was declared about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub key: NodeKey,
    pub kind: NodeKind,
    pub owner: Option<String>,
    pub region: Option<String>,
    pub boundary: Option<String>,
    /// Set by hand (catalog, a `sensitivity` tag, a mapped classification);
    /// propagation never lowers it.
    pub label: Option<Label>,
    /// The highest label an agent may handle.
    pub clearance: Option<Label>,
    /// The highest label a model deployment may receive.
    pub allowed_label: Option<Label>,
}

impl Node {
    pub fn new(key: NodeKey, kind: NodeKind) -> Self {
        Self {
            key,
            kind,
            owner: None,
            region: None,
            boundary: None,
            label: None,
            clearance: None,
            allowed_label: None,
        }
    }
}

/// Who said an edge exists.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Catalog,
    Openlineage,
    Foundry,
    Atlas,
    Observed,
    /// Drawn from OpenTelemetry GenAI traces (`docs/otel.md`).
    Otel,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Openlineage => "openlineage",
            Self::Foundry => "foundry",
            Self::Atlas => "atlas",
            Self::Observed => "observed",
            Self::Otel => "otel",
        }
    }
}

impl FromStr for Origin {
    type Err = LineageError;
    fn from_str(s: &str) -> Result<Self> {
        [
            Self::Catalog,
            Self::Openlineage,
            Self::Foundry,
            Self::Atlas,
            Self::Observed,
            Self::Otel,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| LineageError::UnknownOrigin(s.to_string()))
    }
}

/// How labels travel along an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "flow", content = "cap")]
pub enum Flow {
    /// The upstream label arrives as it is.
    Open,
    /// No label crosses (e.g. an anonymising step).
    Blocked,
    /// Labels above this one arrive as it (e.g. a masking view).
    Cap(Rank),
}

impl Flow {
    /// What arrives downstream of a node labelled `upstream`.
    pub fn carry(self, upstream: Option<Rank>) -> Option<Rank> {
        match self {
            Self::Open => upstream,
            Self::Blocked => None,
            Self::Cap(cap) => upstream.map(|r| r.min(cap)),
        }
    }
}

/// A data-flow edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub kind: String,
    pub origin: Origin,
    pub flow: Flow,
    /// Observed edges: when first and last seen (RFC 3339), and how many calls.
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub calls: u64,
}

impl Edge {
    pub fn new(kind: impl Into<String>, origin: Origin) -> Self {
        Self {
            kind: kind.into(),
            origin,
            flow: Flow::Open,
            first_seen: None,
            last_seen: None,
            calls: 0,
        }
    }
}
