//! Label propagation: a node's effective label is the highest of its own label
//! and of what flows in along its edges (blocked edges carry nothing, capped ones
//! at most their cap) - the least fixpoint of that rule.
//!
//! A full pass visits the strongly connected components in topological order:
//! upstream components are final when a component is reached, and inside a
//! cycle a worklist runs until nothing rises. Labels only rise and there are
//! few of them, so it terminates. Adding an edge or raising a label only raises
//! labels downstream, so that runs the worklist from the touched node alone.

use std::collections::VecDeque;

use petgraph::Direction::{Incoming, Outgoing};
use petgraph::algo::tarjan_scc;
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeRef, NodeIndexable};

use crate::graph::{Derived, LineageGraph};
use crate::label::Rank;

impl LineageGraph {
    /// Recomputes every effective label from the declared ones.
    pub fn propagate(&mut self) {
        let _span = tracing::debug_span!("propagate", nodes = self.graph.node_count()).entered();
        self.derived = vec![Derived::default(); self.graph.node_bound()];
        for ix in self.graph.node_indices() {
            self.derived[ix.index()].effective = self.graph[ix].label.as_ref().map(|l| l.rank);
        }
        // `tarjan_scc` lists components upstream-last.
        let components = tarjan_scc(&self.graph);
        let mut component_of = vec![usize::MAX; self.graph.node_bound()];
        for (c, members) in components.iter().enumerate() {
            for ix in members {
                component_of[ix.index()] = c;
            }
        }
        let mut queue = VecDeque::new();
        for (c, members) in components.iter().enumerate().rev() {
            queue.extend(members.iter().copied());
            while let Some(ix) = queue.pop_front() {
                if self.relax(ix) && members.len() > 1 {
                    queue.extend(
                        self.graph
                            .neighbors_directed(ix, Outgoing)
                            .filter(|n| component_of[n.index()] == c),
                    );
                }
            }
        }
    }

    /// Spreads a possible rise of `start`'s inflow downstream.
    pub(crate) fn raise_from(&mut self, start: NodeIndex) {
        self.spread(VecDeque::from([start]));
    }

    /// Applies a node's own (raised) label and spreads it downstream.
    pub(crate) fn raise_own(&mut self, ix: NodeIndex) {
        let own = self.graph[ix].label.as_ref().map(|l| l.rank);
        if own > self.derived[ix.index()].effective {
            self.derived[ix.index()] = Derived {
                effective: own,
                via: None,
            };
            self.spread(self.graph.neighbors_directed(ix, Outgoing).collect());
        }
    }

    fn spread(&mut self, mut queue: VecDeque<NodeIndex>) {
        while let Some(ix) = queue.pop_front() {
            if self.relax(ix) {
                queue.extend(self.graph.neighbors_directed(ix, Outgoing));
            }
        }
    }

    /// Raises a node to the best of its own label and its inflow; true if it rose.
    fn relax(&mut self, ix: NodeIndex) -> bool {
        let current = self.derived[ix.index()].effective;
        let mut best: Option<(Rank, EdgeIndex)> = None;
        for e in self.graph.edges_directed(ix, Incoming) {
            let arriving = e
                .weight()
                .flow
                .carry(self.derived[e.source().index()].effective);
            if let Some(rank) = arriving
                && best.is_none_or(|(b, _)| rank > b)
            {
                best = Some((rank, e.id()));
            }
        }
        match best {
            Some((rank, via)) if Some(rank) > current => {
                self.derived[ix.index()] = Derived {
                    effective: Some(rank),
                    via: Some(via),
                };
                true
            }
            _ => false,
        }
    }

    /// The path that gave a node its label, from the node whose own label it is
    /// down to `ix`: `(node, edge into it)` pairs, the first with no edge.
    pub fn label_path(&self, ix: NodeIndex) -> Vec<(NodeIndex, Option<EdgeIndex>)> {
        let mut path = Vec::new();
        let mut at = ix;
        // A `via` chain never repeats (labels along it never fall, and a node
        // takes a `via` only when it rises), but bound the walk anyway.
        for _ in 0..=self.graph.node_count() {
            let via = self.derived.get(at.index()).and_then(|d| d.via);
            path.push((at, via));
            match via.and_then(|e| self.graph.edge_endpoints(e)) {
                Some((from, _)) => at = from,
                None => break,
            }
        }
        path.reverse();
        path
    }
}
