//! The in-memory graph: petgraph's `StableDiGraph` (indices survive removals, so
//! derived labels can be kept in a vector beside it) and a key index.

use std::collections::{HashMap, HashSet};

use petgraph::Direction::{Incoming, Outgoing};
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

use crate::label::{Rank, Taxonomy};
use crate::model::{Edge, Flow, Node, NodeKey, NodeKind};
use crate::{LineageError, Result};

/// A node's effective label and the in-edge it came by (`None`: its own label,
/// or no label at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Derived {
    pub effective: Option<Rank>,
    pub via: Option<EdgeIndex>,
}

/// The lineage graph with every node's effective label kept current.
#[derive(Debug, Clone)]
pub struct LineageGraph {
    pub(crate) taxonomy: Taxonomy,
    pub(crate) graph: StableDiGraph<Node, Edge>,
    index: HashMap<NodeKey, NodeIndex>,
    /// Nodes by name alone: a query names a node without its namespace.
    by_name: HashMap<String, Vec<NodeIndex>>,
    pub(crate) derived: Vec<Derived>,
}

impl LineageGraph {
    pub fn new(taxonomy: Taxonomy) -> Self {
        Self {
            taxonomy,
            graph: StableDiGraph::new(),
            index: HashMap::new(),
            by_name: HashMap::new(),
            derived: Vec::new(),
        }
    }

    /// A graph from whole node and edge lists, propagated once. Edges name their
    /// endpoints by key; an edge to an unknown key is an error.
    pub fn build(
        taxonomy: Taxonomy,
        nodes: impl IntoIterator<Item = Node>,
        edges: impl IntoIterator<Item = (NodeKey, NodeKey, Edge)>,
    ) -> Result<Self> {
        let mut g = Self::new(taxonomy);
        for node in nodes {
            g.insert_node(node);
        }
        for (from, to, edge) in edges {
            let (a, b) = (g.require(&from)?, g.require(&to)?);
            g.graph.add_edge(a, b, edge);
        }
        g.propagate();
        Ok(g)
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    pub fn node(&self, ix: NodeIndex) -> &Node {
        &self.graph[ix]
    }

    pub fn edge(&self, ix: EdgeIndex) -> &Edge {
        &self.graph[ix]
    }

    /// The endpoints of an edge, in data-flow order.
    pub fn endpoints(&self, ix: EdgeIndex) -> (NodeIndex, NodeIndex) {
        self.graph
            .edge_endpoints(ix)
            .unwrap_or((NodeIndex::end(), NodeIndex::end()))
    }

    pub fn nodes(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph.node_indices()
    }

    pub fn edges(&self) -> impl Iterator<Item = EdgeIndex> + '_ {
        self.graph.edge_indices()
    }

    pub fn find(&self, key: &NodeKey) -> Option<NodeIndex> {
        self.index.get(key).copied()
    }

    fn require(&self, key: &NodeKey) -> Result<NodeIndex> {
        self.find(key)
            .ok_or_else(|| LineageError::UnknownNode(key.to_string()))
    }

    /// A node by name, with its namespace when the name alone is ambiguous.
    pub fn resolve(&self, namespace: Option<&str>, name: &str) -> Result<NodeIndex> {
        if let Some(ns) = namespace {
            return self.require(&NodeKey::new(ns, name));
        }
        match self.by_name.get(name).map(Vec::as_slice) {
            Some([ix]) => Ok(*ix),
            None | Some([]) => Err(LineageError::UnknownNode(name.to_string())),
            Some(several) => {
                let mut namespaces: Vec<&str> = several
                    .iter()
                    .map(|ix| self.graph[*ix].key.namespace.as_str())
                    .collect();
                namespaces.sort_unstable();
                Err(LineageError::AmbiguousNode {
                    name: name.to_string(),
                    namespaces: namespaces.join(", "),
                })
            }
        }
    }

    /// A node's effective label.
    pub fn effective(&self, ix: NodeIndex) -> Option<Rank> {
        self.derived.get(ix.index()).and_then(|d| d.effective)
    }

    /// The label name of a rank.
    pub fn label_name(&self, rank: Option<Rank>) -> Option<&str> {
        rank.map(|r| self.taxonomy.name(r))
    }

    fn insert_node(&mut self, node: Node) -> NodeIndex {
        let own = node.label.as_ref().map(|l| l.rank);
        let key = node.key.clone();
        let ix = self.graph.add_node(node);
        self.by_name.entry(key.name.clone()).or_default().push(ix);
        self.index.insert(key, ix);
        if self.derived.len() <= ix.index() {
            self.derived.resize(ix.index() + 1, Derived::default());
        }
        self.derived[ix.index()] = Derived {
            effective: own,
            via: None,
        };
        ix
    }

    /// Adds a node, or replaces what is declared about it. Labels stay current:
    /// a raised label spreads at once, anything else recomputes the graph.
    pub fn upsert_node(&mut self, node: Node) -> NodeIndex {
        match self.find(&node.key) {
            None => self.insert_node(node),
            Some(ix) => {
                let old = self.graph[ix].label.as_ref().map(|l| l.rank);
                let new = node.label.as_ref().map(|l| l.rank);
                self.graph[ix] = node;
                if new >= old {
                    self.raise_own(ix);
                } else {
                    self.propagate();
                }
                ix
            }
        }
    }

    /// Adds what an import saw, as the store's merge does: a known node keeps its
    /// kind and every attribute the import does not set; an edge between keys
    /// the graph lacks is skipped; a repeated edge adds its calls and widens its
    /// first and last sightings. Labels are brought up to date once, after the
    /// whole import: by one full pass if anything was lowered or narrowed (so a
    /// batch cannot force a pass per change), else by spreading the rises.
    ///
    /// Linear in the import and the edges of the nodes it touches: existing
    /// edges are found through an index of each source's out-edges built once,
    /// and each touched node is raised once (one event with 100,000 inputs of
    /// one job took 431 s when each edge searched and raised the job again).
    pub fn merge(&mut self, import: &crate::Import) {
        let (mut recompute, mut raised, mut touched) = (false, Vec::new(), Vec::new());
        let mut existing: HashMap<(NodeIndex, NodeIndex, String, crate::Origin), EdgeIndex> =
            HashMap::new();
        let mut indexed: HashSet<NodeIndex> = HashSet::new();
        for node in &import.nodes {
            let Some(ix) = self.find(&node.key) else {
                self.insert_node(node.clone());
                continue;
            };
            let mut merged = self.graph[ix].clone();
            for (new, old) in [
                (&node.owner, &mut merged.owner),
                (&node.region, &mut merged.region),
                (&node.boundary, &mut merged.boundary),
            ] {
                if new.is_some() {
                    old.clone_from(new);
                }
            }
            for (new, old) in [
                (&node.label, &mut merged.label),
                (&node.clearance, &mut merged.clearance),
                (&node.allowed_label, &mut merged.allowed_label),
            ] {
                if new.is_some() {
                    old.clone_from(new);
                }
            }
            let rank = |n: &Node| n.label.as_ref().map(|l| l.rank);
            recompute |= rank(&merged) < rank(&self.graph[ix]);
            self.graph[ix] = merged;
            raised.push(ix);
        }
        for (from, to, edge) in &import.edges {
            let (Some(a), Some(b)) = (self.find(from), self.find(to)) else {
                continue;
            };
            let mut edge = edge.clone();
            if indexed.insert(a) {
                for e in self.graph.edges_directed(a, Outgoing) {
                    let w = e.weight();
                    existing.insert((a, e.target(), w.kind.clone(), w.origin), e.id());
                }
            }
            let key = (a, b, edge.kind.clone(), edge.origin);
            match existing.get(&key).copied() {
                Some(ix) => {
                    let old = &self.graph[ix];
                    edge.calls += old.calls;
                    edge.first_seen = earliest(&old.first_seen, &edge.first_seen, true);
                    edge.last_seen = earliest(&old.last_seen, &edge.last_seen, false);
                    recompute |= !flows_at_least(edge.flow, old.flow);
                    self.graph[ix] = edge;
                }
                None => {
                    let ix = self.graph.add_edge(a, b, edge);
                    existing.insert(key, ix);
                }
            }
            touched.push(b);
        }
        if recompute {
            self.propagate();
            return;
        }
        for list in [&mut raised, &mut touched] {
            list.sort_unstable();
            list.dedup();
        }
        for ix in raised {
            self.raise_own(ix);
        }
        for ix in touched {
            self.raise_from(ix);
        }
    }

    /// The node with this key, added with only its kind if it is new (observed
    /// traffic knows no more about it).
    pub fn ensure_node(&mut self, key: NodeKey, kind: NodeKind) -> NodeIndex {
        match self.find(&key) {
            Some(ix) => ix,
            None => self.insert_node(Node::new(key, kind)),
        }
    }

    /// Adds an edge, or replaces the one with the same endpoints, kind and
    /// origin. Labels stay current, incrementally when they can only rise.
    pub fn upsert_edge(&mut self, from: NodeIndex, to: NodeIndex, edge: Edge) -> EdgeIndex {
        let existing = self
            .graph
            .edges_connecting(from, to)
            .find(|e| e.weight().kind == edge.kind && e.weight().origin == edge.origin)
            .map(|e| e.id());
        match existing {
            None => {
                let ix = self.graph.add_edge(from, to, edge);
                self.raise_from(to);
                ix
            }
            Some(ix) => {
                let narrowed = !flows_at_least(edge.flow, self.graph[ix].flow);
                self.graph[ix] = edge;
                if narrowed {
                    self.propagate();
                } else {
                    self.raise_from(to);
                }
                ix
            }
        }
    }

    /// Removes an edge and recomputes the labels it may have carried.
    pub fn remove_edge(&mut self, ix: EdgeIndex) -> Option<Edge> {
        let edge = self.graph.remove_edge(ix)?;
        self.propagate();
        Some(edge)
    }

    /// The in-edges or out-edges of a node.
    pub fn edges_of(
        &self,
        ix: NodeIndex,
        outgoing: bool,
    ) -> impl Iterator<Item = (EdgeIndex, NodeIndex)> + '_ {
        let dir = if outgoing { Outgoing } else { Incoming };
        self.graph.edges_directed(ix, dir).map(move |e| {
            let other = if outgoing { e.target() } else { e.source() };
            (e.id(), other)
        })
    }
}

/// The earlier (or later) of two optional UTC RFC 3339 times, as the store
/// keeps first and last seen.
fn earliest(a: &Option<String>, b: &Option<String>, first: bool) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (a < b) == first { a } else { b }.clone()),
        (a, b) => a.clone().or_else(|| b.clone()),
    }
}

/// Whether `new` lets through at least what `old` did.
fn flows_at_least(new: Flow, old: Flow) -> bool {
    match (new, old) {
        (Flow::Open, _) | (_, Flow::Blocked) => true,
        (Flow::Cap(n), Flow::Cap(o)) => n >= o,
        _ => false,
    }
}
