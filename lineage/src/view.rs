//! Serializable answers: what the CLI prints and the API returns.

use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use serde::Serialize;

use crate::graph::LineageGraph;
use crate::model::{Flow, NodeKind, Origin};
use crate::query::{Bounds, Direction};

/// A node as an answer shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeSummary {
    pub namespace: String,
    pub name: String,
    pub kind: NodeKind,
    /// The label propagation gave it.
    pub effective_label: Option<String>,
    /// The label set on it by hand, if any.
    pub label: Option<String>,
}

/// An edge as an answer shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EdgeSummary {
    pub kind: String,
    pub origin: Origin,
    pub blocked: bool,
    pub cap: Option<String>,
    pub calls: u64,
}

/// One step of a path: a node and the edge that led to it (none for the first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PathStep {
    pub node: NodeSummary,
    pub via: Option<EdgeSummary>,
}

impl LineageGraph {
    pub fn summary(&self, ix: NodeIndex) -> NodeSummary {
        let node = self.node(ix);
        NodeSummary {
            namespace: node.key.namespace.clone(),
            name: node.key.name.clone(),
            kind: node.kind,
            effective_label: self.label_name(self.effective(ix)).map(str::to_string),
            label: node.label.as_ref().map(|l| l.name.clone()),
        }
    }

    pub fn edge_summary(&self, ix: EdgeIndex) -> EdgeSummary {
        let edge = self.edge(ix);
        EdgeSummary {
            kind: edge.kind.clone(),
            origin: edge.origin,
            blocked: edge.flow == Flow::Blocked,
            cap: match edge.flow {
                Flow::Cap(r) => Some(self.taxonomy.name(r).to_string()),
                _ => None,
            },
            calls: edge.calls,
        }
    }

    pub fn path_view(&self, path: &[(NodeIndex, Option<EdgeIndex>)]) -> Vec<PathStep> {
        path.iter()
            .map(|(n, e)| PathStep {
                node: self.summary(*n),
                via: e.map(|e| self.edge_summary(e)),
            })
            .collect()
    }
}

/// A node reached by a traversal and its distance in edges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReachedNode {
    #[serde(flatten)]
    pub node: NodeSummary,
    pub distance: u32,
}

/// A blast radius or provenance answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReachAnswer {
    pub from: NodeSummary,
    pub direction: Direction,
    pub depth: u32,
    pub nodes: Vec<ReachedNode>,
    /// The depth or the result limit cut something off.
    pub truncated: bool,
}

/// A node and the path that proves its label (or links it to another node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Explained {
    pub node: NodeSummary,
    pub path: Vec<PathStep>,
}

impl LineageGraph {
    pub fn reach_answer(
        &self,
        start: NodeIndex,
        direction: Direction,
        bounds: &Bounds,
    ) -> ReachAnswer {
        let reached = self.reach(start, direction, bounds);
        ReachAnswer {
            from: self.summary(start),
            direction,
            depth: bounds.depth,
            nodes: reached
                .nodes
                .iter()
                .map(|(n, d)| ReachedNode {
                    node: self.summary(*n),
                    distance: *d,
                })
                .collect(),
            truncated: reached.truncated,
        }
    }

    /// Why `ix` carries its label.
    pub fn explain(&self, ix: NodeIndex) -> Explained {
        Explained {
            node: self.summary(ix),
            path: self.path_view(&self.label_path(ix)),
        }
    }
}

/// A path on one line: `ns::a -[reads, cap General]-> ns::b -[calls]-> ns::c`.
pub fn path_text(path: &[PathStep]) -> String {
    let mut text = String::new();
    for step in path {
        if let Some(via) = &step.via {
            text.push_str(" -[");
            text.push_str(&via.kind);
            if via.blocked {
                text.push_str(", blocked");
            }
            if let Some(cap) = &via.cap {
                text.push_str(", cap ");
                text.push_str(cap);
            }
            text.push_str("]-> ");
        }
        text.push_str(&step.node.namespace);
        text.push_str("::");
        text.push_str(&step.node.name);
    }
    text
}
