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
use petgraph::algo::TarjanScc;
use petgraph::stable_graph::{EdgeIndex, NodeIndex};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};

use crate::graph::{Derived, LineageGraph};
use crate::label::Rank;
use crate::model::Flow;

impl LineageGraph {
    /// Recomputes every effective label from the declared ones.
    pub fn propagate(&mut self) {
        let _span = tracing::debug_span!("propagate", nodes = self.graph.node_count()).entered();
        let bound = self.graph.node_bound();
        self.derived = vec![Derived::default(); bound];
        for ix in self.graph.node_indices() {
            self.derived[ix.index()].effective = self.graph[ix].label.as_ref().map(|l| l.rank);
        }
        let inflow = Inflow::of(self);
        // Components arrive upstream-last; kept flat to spare an allocation each.
        let (mut order, mut ends) = (Vec::with_capacity(bound), Vec::new());
        TarjanScc::new().run(&self.graph, |members| {
            order.extend_from_slice(members);
            ends.push(order.len());
        });
        let mut component_of = vec![usize::MAX; bound];
        let mut start = 0;
        for (c, &end) in ends.iter().enumerate() {
            for ix in &order[start..end] {
                component_of[ix.index()] = c;
            }
            start = end;
        }
        let mut queue = VecDeque::new();
        for c in (0..ends.len()).rev() {
            let members = &order[if c == 0 { 0 } else { ends[c - 1] }..ends[c]];
            if let [single] = members {
                inflow.relax(&mut self.derived, *single);
                continue;
            }
            queue.extend(members.iter().copied());
            while let Some(ix) = queue.pop_front() {
                if inflow.relax(&mut self.derived, ix) {
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

    /// Applies a node's own (raised) label and spreads it downstream. A label
    /// set by hand explains the node's label whenever it reaches it, as a full
    /// pass would say: the recorded path then starts at the node.
    pub(crate) fn raise_own(&mut self, ix: NodeIndex) {
        let own = self.graph[ix].label.as_ref().map(|l| l.rank);
        let derived = &mut self.derived[ix.index()];
        if own.is_none() || own < derived.effective {
            return;
        }
        let rose = own > derived.effective;
        *derived = Derived {
            effective: own,
            via: None,
        };
        if rose {
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
                && better(rank, e.id(), best)
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

/// Among in-edges carrying the same label, the lowest edge index explains it,
/// so a node's recorded path does not depend on the order edges were visited.
fn better(rank: Rank, edge: EdgeIndex, best: Option<(Rank, EdgeIndex)>) -> bool {
    best.is_none_or(|(b, e)| rank > b || (rank == b && edge < e))
}

/// Every node's in-edges in one contiguous array (source, flow, edge): a full
/// pass reads a node's inflow without chasing petgraph's per-node edge lists,
/// which is most of its time on a large graph.
struct Inflow {
    offsets: Vec<usize>,
    edges: Vec<(usize, Flow, EdgeIndex)>,
}

impl Inflow {
    fn of(graph: &LineageGraph) -> Self {
        let g = &graph.graph;
        let mut offsets = vec![0usize; g.node_bound() + 1];
        for e in g.edge_references() {
            offsets[e.target().index() + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut fill = offsets.clone();
        let mut edges = vec![(0, Flow::Open, EdgeIndex::end()); g.edge_count()];
        for e in g.edge_references() {
            let slot = &mut fill[e.target().index()];
            edges[*slot] = (e.source().index(), e.weight().flow, e.id());
            *slot += 1;
        }
        Self { offsets, edges }
    }

    /// As [`LineageGraph::relax`], over the snapshot.
    fn relax(&self, derived: &mut [Derived], ix: NodeIndex) -> bool {
        let i = ix.index();
        let mut best: Option<(Rank, EdgeIndex)> = None;
        for &(source, flow, edge) in &self.edges[self.offsets[i]..self.offsets[i + 1]] {
            if let Some(rank) = flow.carry(derived[source].effective)
                && better(rank, edge, best)
            {
                best = Some((rank, edge));
            }
        }
        match best {
            Some((rank, via)) if Some(rank) > derived[i].effective => {
                derived[i] = Derived {
                    effective: Some(rank),
                    via: Some(via),
                };
                true
            }
            _ => false,
        }
    }
}
