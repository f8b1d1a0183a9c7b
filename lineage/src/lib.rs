//! Tollgate's security side of the data flow. Importers (the YAML catalog,
//! OpenLineage events, Foundry connections, Atlas entities, observed gateway
//! traffic) turn what they read into nodes and data-flow edges; the state
//! database keeps them; [`LineageGraph`] loads them into a petgraph graph in
//! memory, propagates sensitivity labels along the edges (recording for each
//! node the path that gave it its label), and answers the analysts' questions:
//! blast radius, provenance, paths, exposure and policy findings. Everything
//! here is derived from the stored nodes and edges and can be rebuilt from them.

mod atlas;
mod catalog;
#[cfg(feature = "store")]
mod dlp;
mod error;
mod findings;
mod foundry;
mod graph;
pub mod label;
pub mod model;
#[cfg(feature = "store")]
mod observe;
mod openlineage;
mod otel;
mod propagate;
mod query;
#[cfg(feature = "store")]
mod store;
mod view;

pub use atlas::{ATLAS_NAMESPACE, AtlasImport, parse_atlas};
pub use catalog::parse_catalog;
#[cfg(feature = "store")]
pub use dlp::{HitContext, HitCount, HitGrouping, hit_context, hit_counts};
pub use error::{LineageError, Result};
pub use findings::{Exposure, Finding, FindingKind, Policy};
pub use foundry::{ConnectionFinding, FOUNDRY_NAMESPACE, parse_foundry};
pub use graph::LineageGraph;
pub use label::{Rank, Taxonomy};
pub use model::{Edge, Flow, Label, Node, NodeKey, NodeKind, Origin};
#[cfg(feature = "store")]
pub use observe::{OBSERVED_NAMESPACE, observe};
pub use openlineage::parse_events;
pub use otel::{BypassFinding, GatewayHosts, bypass_findings, observe_traces, trace_import};
pub use petgraph::stable_graph::{EdgeIndex, NodeIndex};
pub use query::{Bounds, Direction, Reached};
#[cfg(feature = "store")]
pub use store::{load_graph, save_import};
#[cfg(feature = "store")]
pub use tollgate_store::state::LineageMode;
pub use view::{
    ANSWER_PATH_STEPS, EdgeSummary, Explained, NodeSummary, Omitted, PathStep, ReachAnswer,
    ReachedNode, WHY_PATH_STEPS, path_text, path_text_with,
};

/// What one importer read: nodes to add or update and edges between them (by
/// key), all from one origin.
#[derive(Clone, Debug)]
pub struct Import {
    pub origin: Origin,
    pub nodes: Vec<Node>,
    pub edges: Vec<(NodeKey, NodeKey, Edge)>,
}
