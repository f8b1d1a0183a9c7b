//! The lineage graph benchmark (`bench/lineage.sh`): a generated layered graph
//! (data sources -> MCP tools -> agents -> model deployments -> gateways, with a
//! few feedback edges making cycles, some capped and blocked edges), timed for
//! full propagation, depth-5 blast radius, and the incremental update after one
//! new edge. Built without the store feature, so a release build takes seconds.
//!
//! `bench/lineage.sh [NODES] [EDGES]`

use std::time::{Duration, Instant};

use tollgate_lineage::{
    Bounds, Direction, Edge, Flow, Label, LineageGraph, Node, NodeKey, NodeKind, Origin, Rank,
    Taxonomy,
};

/// splitmix64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const LAYERS: [(NodeKind, f64); 5] = [
    (NodeKind::DataSource, 0.20),
    (NodeKind::McpTool, 0.20),
    (NodeKind::Agent, 0.30),
    (NodeKind::ModelDeployment, 0.20),
    (NodeKind::Gateway, 0.10),
];

fn key(i: usize) -> NodeKey {
    NodeKey::new("bench", format!("n{i}"))
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `--catalog FILE`: write the graph as a catalog instead of timing it (the
    // HTTP benchmark imports it into a server).
    let catalog = raw
        .iter()
        .position(|a| a == "--catalog")
        .and_then(|i| raw.get(i + 1).cloned());
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let nodes = args.first().copied().unwrap_or(100_000);
    let edges = args.get(1).copied().unwrap_or(400_000);
    let taxonomy = Taxonomy::default();
    let mut rng = Rng(42);

    // Layer boundaries.
    let mut bounds = vec![0];
    for (_, share) in LAYERS {
        let last = *bounds.last().unwrap_or(&0);
        bounds.push((last + (nodes as f64 * share) as usize).min(nodes));
    }
    if let Some(last) = bounds.last_mut() {
        *last = nodes;
    }
    let layer_of = |i: usize| bounds.iter().rposition(|&b| b <= i).unwrap_or(0).min(4);

    let node_list: Vec<Node> = (0..nodes)
        .map(|i| {
            let mut node = Node::new(key(i), LAYERS[layer_of(i)].0);
            if layer_of(i) == 0 && rng.below(10) == 0 {
                let rank = Rank(rng.below(5) as u8);
                node.label = Some(Label {
                    name: taxonomy.name(rank).to_string(),
                    rank,
                });
            }
            node
        })
        .collect();
    let mut edge_list = Vec::with_capacity(edges);
    let feedback = edges / 4000;
    for n in 0..edges {
        let (from, to) = if n < feedback {
            // Gateways feeding agents: cycles.
            (
                bounds[4] + rng.below(bounds[5] - bounds[4]),
                bounds[2] + rng.below(bounds[3] - bounds[2]),
            )
        } else {
            let layer = 1 + rng.below(4);
            let to = bounds[layer] + rng.below(bounds[layer + 1] - bounds[layer]);
            let from = bounds[layer - 1] + rng.below(bounds[layer] - bounds[layer - 1]);
            (from, to)
        };
        let mut edge = Edge::new("flows", Origin::Catalog);
        edge.flow = match rng.below(100) {
            0 => Flow::Blocked,
            1 | 2 => Flow::Cap(Rank(2)),
            _ => Flow::Open,
        };
        edge_list.push((key(from), key(to), edge));
    }

    if let Some(path) = catalog {
        write_catalog(&path, &node_list, &edge_list, &taxonomy).expect("writing the catalog");
        println!(
            "wrote {path}: {} nodes, {} edges",
            node_list.len(),
            edge_list.len()
        );
        return;
    }
    let started = Instant::now();
    let mut graph = LineageGraph::build(taxonomy, node_list, edge_list).expect("graph");
    let build = started.elapsed();
    println!(
        "graph: {} nodes, {} edges (built and propagated in {})",
        graph.node_count(),
        graph.edge_count(),
        ms(build)
    );

    let mut full = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        graph.propagate();
        full.push(t.elapsed());
    }
    let labelled = graph
        .nodes()
        .filter(|&n| graph.effective(n).is_some())
        .count();

    let index: Vec<_> = (0..nodes)
        .map(|i| graph.find(&key(i)).expect("node"))
        .collect();
    let depth5 = Bounds {
        depth: 5,
        kinds: vec![],
        limit: 100_000,
    };
    let mut radius = Vec::new();
    let mut reached = 0usize;
    for _ in 0..2000 {
        let start = index[rng.below(bounds[1])];
        let t = Instant::now();
        let r = graph.reach(start, Direction::Downstream, &depth5);
        radius.push(t.elapsed());
        reached += r.nodes.len();
    }

    let mut incremental = Vec::new();
    for _ in 0..2000 {
        let from = index[bounds[0] + rng.below(bounds[1])];
        let to = index[bounds[1] + rng.below(bounds[2] - bounds[1])];
        let t = Instant::now();
        graph.upsert_edge(from, to, Edge::new("observed", Origin::Observed));
        incremental.push(t.elapsed());
    }

    println!("labelled nodes after propagation: {labelled}");
    println!(
        "full propagation:              median {}  (target < 100 ms; networkx 640 ms)",
        ms(median(&mut full))
    );
    println!(
        "depth-5 blast radius:          p50 {}  p95 {}  ({} nodes on average; target p95 < 0.2 ms; networkx 0.57 ms)",
        ms(pct(&mut radius, 50)),
        ms(pct(&mut radius, 95)),
        reached / 2000
    );
    println!(
        "incremental update, one edge:  p50 {}  p95 {}  (target < 1 ms)",
        ms(pct(&mut incremental, 50)),
        ms(pct(&mut incremental, 95))
    );
}

fn median(v: &mut [Duration]) -> Duration {
    pct(v, 50)
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort_unstable();
    v[(v.len() - 1) * p / 100]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The graph as a catalog file (docs/reference-data.md).
fn write_catalog(
    path: &str,
    nodes: &[Node],
    edges: &[(NodeKey, NodeKey, Edge)],
    taxonomy: &Taxonomy,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "version: 1\nnodes:")?;
    for node in nodes {
        write!(
            out,
            "  - {{kind: {}, namespace: {:?}, name: {:?}",
            node.kind, node.key.namespace, node.key.name
        )?;
        if let Some(label) = &node.label {
            write!(out, ", label: {:?}", label.name)?;
        }
        writeln!(out, "}}")?;
    }
    writeln!(out, "edges:")?;
    for (n, (from, to, edge)) in edges.iter().enumerate() {
        // Kinds differ per edge: the catalog keeps one edge per pair and kind.
        write!(
            out,
            "  - {{kind: e{n}, from: {{namespace: {:?}, name: {:?}}}, to: {{namespace: {:?}, name: {:?}}}",
            from.namespace, from.name, to.namespace, to.name
        )?;
        match edge.flow {
            Flow::Blocked => write!(out, ", blocked: true")?,
            Flow::Cap(rank) => write!(out, ", cap: {:?}", taxonomy.name(rank))?,
            Flow::Open => {}
        }
        writeln!(out, "}}")?;
    }
    out.flush()
}
