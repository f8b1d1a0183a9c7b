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

    /// A path to `end` as an answer shows it: whole when it has at most
    /// `max_steps` steps, else its first and last halves and what is left out.
    pub fn bounded_path_view(
        &self,
        end: &NodeSummary,
        path: &[(NodeIndex, Option<EdgeIndex>)],
        max_steps: usize,
    ) -> (Vec<PathStep>, Option<Omitted>) {
        if path.len() <= max_steps {
            return (self.path_view(path), None);
        }
        let head = max_steps / 2;
        let tail = max_steps - head;
        let mut steps = self.path_view(&path[..head]);
        steps.extend(self.path_view(&path[path.len() - tail..]));
        let omitted = Omitted {
            steps: path.len() - head - tail,
            after: head,
            why: why_link(end),
        };
        (steps, Some(omitted))
    }

    /// A path between two nodes, whole or bounded as [`Self::bounded_path_view`].
    pub fn explain_path(
        &self,
        to: NodeIndex,
        path: &[(NodeIndex, Option<EdgeIndex>)],
        max_steps: usize,
    ) -> Explained {
        let node = self.summary(to);
        let (path, omitted) = self.bounded_path_view(&node, path, max_steps);
        Explained {
            node,
            path,
            omitted,
        }
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
    /// Set when the path was longer than an answer shows: which steps are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<Omitted>,
}

/// Steps a long path leaves out of an answer (a 2,000-node cycle made every
/// proof 4,000 steps long): `path` holds the first steps up to `after`, then
/// the last ones; `why` gives the whole path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Omitted {
    /// `... N more steps`.
    pub steps: usize,
    /// The steps before the gap.
    pub after: usize,
    /// `/api/v1/lineage/why?...` for the node: the path whole.
    pub why: String,
}

/// Steps of a proof path an answer listing many nodes shows; the rest are
/// [`Omitted`].
pub const ANSWER_PATH_STEPS: usize = 20;
/// Steps of the one path `why` answers.
pub const WHY_PATH_STEPS: usize = 10_000;

/// The `why` address of a node.
pub fn why_link(node: &NodeSummary) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("namespace", &node.namespace)
        .append_pair("name", &node.name)
        .finish();
    format!("/api/v1/lineage/why?{query}")
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

    /// Why `ix` carries its label, as an answer listing many nodes shows it
    /// ([`ANSWER_PATH_STEPS`] at most).
    pub fn explain(&self, ix: NodeIndex) -> Explained {
        self.explain_path(ix, &self.label_path(ix), ANSWER_PATH_STEPS)
    }

    /// Why `ix` carries its label, the path whole (up to [`WHY_PATH_STEPS`]).
    pub fn explain_whole(&self, ix: NodeIndex) -> Explained {
        self.explain_path(ix, &self.label_path(ix), WHY_PATH_STEPS)
    }
}

/// A path on one line: `ns::a -[reads, cap General]-> ns::b -[calls]-> ns::c`.
pub fn path_text(path: &[PathStep]) -> String {
    path_text_with(path, None)
}

/// [`path_text`] with the gap of a bounded path said where it is.
pub fn path_text_with(path: &[PathStep], omitted: Option<&Omitted>) -> String {
    let mut text = String::new();
    for (i, step) in path.iter().enumerate() {
        if let Some(gap) = omitted.filter(|o| o.after == i) {
            text.push_str(&format!(" ... {} more steps ...", gap.steps));
        }
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
