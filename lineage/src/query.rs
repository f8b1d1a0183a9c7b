//! Bounded traversals: blast radius (downstream), provenance (upstream), the path
//! between two nodes, and the nodes at or above a label.

use std::collections::{HashMap, VecDeque};

use petgraph::Direction::{Incoming, Outgoing};
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeRef, VisitMap, Visitable};
use serde::{Deserialize, Serialize};

use crate::graph::LineageGraph;
use crate::label::Rank;
use crate::model::NodeKind;

/// Which way a traversal follows the edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Where data from the node goes (blast radius).
    Downstream,
    /// Where the node's data comes from (provenance).
    Upstream,
}

impl Direction {
    fn petgraph(self) -> petgraph::Direction {
        match self {
            Self::Downstream => Outgoing,
            Self::Upstream => Incoming,
        }
    }
}

/// The bounds of a traversal.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub depth: u32,
    /// Only nodes of these kinds are returned (all are traversed); empty: all.
    pub kinds: Vec<NodeKind>,
    pub limit: usize,
}

/// Nodes reached and how far away; `truncated` when the depth or the result
/// limit cut something off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reached {
    pub nodes: Vec<(NodeIndex, u32)>,
    pub truncated: bool,
}

impl LineageGraph {
    /// Breadth-first from `start` (not included), nearest first.
    pub fn reach(&self, start: NodeIndex, direction: Direction, bounds: &Bounds) -> Reached {
        let dir = direction.petgraph();
        let mut seen = self.graph.visit_map();
        seen.visit(start);
        let mut queue = VecDeque::from([(start, 0u32)]);
        let mut nodes = Vec::new();
        let mut truncated = false;
        while let Some((ix, distance)) = queue.pop_front() {
            for next in self.graph.neighbors_directed(ix, dir) {
                if !seen.visit(next) {
                    continue;
                }
                if distance == bounds.depth {
                    truncated = true;
                    continue;
                }
                if bounds.kinds.is_empty() || bounds.kinds.contains(&self.node(next).kind) {
                    if nodes.len() == bounds.limit {
                        return Reached {
                            nodes,
                            truncated: true,
                        };
                    }
                    nodes.push((next, distance + 1));
                }
                queue.push_back((next, distance + 1));
            }
        }
        Reached { nodes, truncated }
    }

    /// A shortest data-flow path from `from` to `to`, within `depth` edges.
    pub fn path_between(
        &self,
        from: NodeIndex,
        to: NodeIndex,
        depth: u32,
    ) -> Option<Vec<(NodeIndex, Option<EdgeIndex>)>> {
        let mut came_by: HashMap<NodeIndex, EdgeIndex> = HashMap::new();
        let mut queue = VecDeque::from([(from, 0u32)]);
        let mut seen = self.graph.visit_map();
        seen.visit(from);
        while let Some((ix, distance)) = queue.pop_front() {
            if ix == to {
                let mut path = vec![(to, came_by.get(&to).copied())];
                let mut at = to;
                while let Some(e) = came_by.get(&at) {
                    at = self.endpoints(*e).0;
                    path.push((at, came_by.get(&at).copied()));
                }
                path.reverse();
                return Some(path);
            }
            if distance == depth {
                continue;
            }
            for e in self.graph.edges_directed(ix, Outgoing) {
                if seen.visit(e.target()) {
                    came_by.insert(e.target(), e.id());
                    queue.push_back((e.target(), distance + 1));
                }
            }
        }
        None
    }

    /// Every node (of these kinds; empty: all) whose effective label is at or
    /// above `min`, most sensitive first.
    pub fn at_or_above(&self, min: Rank, kinds: &[NodeKind]) -> Vec<NodeIndex> {
        let mut found: Vec<NodeIndex> = self
            .nodes()
            .filter(|&ix| self.effective(ix) >= Some(min))
            .filter(|&ix| kinds.is_empty() || kinds.contains(&self.node(ix).kind))
            .collect();
        found.sort_by(|a, b| {
            self.effective(*b)
                .cmp(&self.effective(*a))
                .then_with(|| self.node(*a).key.cmp(&self.node(*b).key))
        });
        found
    }
}
