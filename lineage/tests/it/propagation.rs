//! Label propagation against a naive fixpoint, on random graphs with cycles,
//! blocked and capped edges, and explicit labels.

use proptest::prelude::*;
use tollgate_lineage::{
    Edge, Flow, Label, LineageGraph, Node, NodeIndex, NodeKey, NodeKind, Origin, Rank, Taxonomy,
};

#[derive(Clone, Debug)]
struct Spec {
    labels: Vec<Option<u8>>,
    edges: Vec<(usize, usize, Flow)>,
}

fn spec(max_nodes: usize) -> impl Strategy<Value = Spec> {
    (1..max_nodes).prop_flat_map(|n| {
        let label = proptest::option::weighted(0.3, 0u8..5);
        let flow = prop_oneof![
            6 => Just(Flow::Open),
            1 => Just(Flow::Blocked),
            1 => (0u8..5).prop_map(|r| Flow::Cap(Rank(r))),
        ];
        (
            proptest::collection::vec(label, n),
            proptest::collection::vec((0..n, 0..n, flow), 0..n * 3),
        )
            .prop_map(|(labels, edges)| Spec { labels, edges })
    })
}

fn key(i: usize) -> NodeKey {
    NodeKey::new("t", format!("n{i}"))
}

fn node(i: usize, label: Option<u8>) -> Node {
    let mut node = Node::new(key(i), NodeKind::DataSource);
    node.label = label.map(|r| Label {
        name: Taxonomy::default().name(Rank(r)).to_string(),
        rank: Rank(r),
    });
    node
}

fn edge(flow: Flow, n: usize) -> Edge {
    let mut e = Edge::new(format!("e{n}"), Origin::Catalog);
    e.flow = flow;
    e
}

fn build(spec: &Spec) -> LineageGraph {
    LineageGraph::build(
        Taxonomy::default(),
        spec.labels.iter().enumerate().map(|(i, l)| node(i, *l)),
        spec.edges
            .iter()
            .enumerate()
            .map(|(n, (a, b, f))| (key(*a), key(*b), edge(*f, n))),
    )
    .unwrap()
}

/// The rule applied to every edge until nothing changes.
fn naive(spec: &Spec) -> Vec<Option<Rank>> {
    let mut eff: Vec<Option<Rank>> = spec.labels.iter().map(|l| l.map(Rank)).collect();
    loop {
        let mut changed = false;
        for (a, b, flow) in &spec.edges {
            let arriving = flow.carry(eff[*a]);
            if arriving > eff[*b] {
                eff[*b] = arriving;
                changed = true;
            }
        }
        if !changed {
            return eff;
        }
    }
}

fn effective(g: &LineageGraph, n: usize) -> Vec<Option<Rank>> {
    (0..n)
        .map(|i| g.effective(g.find(&key(i)).unwrap()))
        .collect()
}

proptest! {
    #[test]
    fn propagation_is_the_least_fixpoint(spec in spec(25)) {
        let g = build(&spec);
        prop_assert_eq!(effective(&g, spec.labels.len()), naive(&spec));
    }

    #[test]
    fn explicit_labels_are_never_lowered_and_a_second_pass_changes_nothing(spec in spec(25)) {
        let mut g = build(&spec);
        let first = effective(&g, spec.labels.len());
        for (i, own) in spec.labels.iter().enumerate() {
            prop_assert!(first[i] >= own.map(Rank));
        }
        g.propagate();
        prop_assert_eq!(effective(&g, spec.labels.len()), first);
    }

    #[test]
    fn adding_an_edge_never_lowers_a_label_and_matches_a_rebuild(
        spec in spec(20), a in 0usize..20, b in 0usize..20, cap in proptest::option::of(0u8..5)
    ) {
        let n = spec.labels.len();
        let (a, b) = (a % n, b % n);
        let flow = cap.map_or(Flow::Open, |r| Flow::Cap(Rank(r)));
        let mut g = build(&spec);
        let before = effective(&g, n);
        let (ia, ib) = (g.find(&key(a)).unwrap(), g.find(&key(b)).unwrap());
        g.upsert_edge(ia, ib, edge(flow, 9999));
        let after = effective(&g, n);
        for i in 0..n {
            prop_assert!(after[i] >= before[i]);
        }
        let mut grown = spec.clone();
        grown.edges.push((a, b, flow));
        prop_assert_eq!(after, naive(&grown));
    }

    #[test]
    fn removing_an_edge_recomputes_correctly(spec in spec(20), pick in any::<prop::sample::Index>()) {
        prop_assume!(!spec.edges.is_empty());
        let i = pick.index(spec.edges.len());
        let mut g = build(&spec);
        let (a, b, _) = spec.edges[i];
        let name = format!("e{i}");
        let (ia, ib) = (g.find(&key(a)).unwrap(), g.find(&key(b)).unwrap());
        let ix = g.edges_of(ia, true)
            .find(|(e, to)| *to == ib && g.edge(*e).kind == name)
            .map(|(e, _)| e)
            .unwrap();
        g.remove_edge(ix);
        let mut shrunk = spec.clone();
        shrunk.edges.remove(i);
        prop_assert_eq!(effective(&g, spec.labels.len()), naive(&shrunk));
    }

    #[test]
    fn members_of_an_open_cycle_agree(spec in spec(20)) {
        let open = Spec {
            labels: spec.labels.clone(),
            edges: spec.edges.iter().map(|(a, b, _)| (*a, *b, Flow::Open)).collect(),
        };
        let g = build(&open);
        // With only open edges, a and b on a common cycle reach each other.
        let n = open.labels.len();
        let reach = |from: usize| -> Vec<bool> {
            let mut seen = vec![false; n];
            let mut stack = vec![from];
            while let Some(x) = stack.pop() {
                for (a, b, _) in &open.edges {
                    if *a == x && !seen[*b] {
                        seen[*b] = true;
                        stack.push(*b);
                    }
                }
            }
            seen
        };
        let eff = effective(&g, n);
        for x in 0..n {
            let rx = reach(x);
            for y in 0..n {
                if rx[y] && reach(y)[x] {
                    prop_assert_eq!(eff[x], eff[y]);
                }
            }
        }
    }

    #[test]
    fn every_label_path_proves_its_label(spec in spec(25)) {
        let g = build(&spec);
        for i in 0..spec.labels.len() {
            let ix = g.find(&key(i)).unwrap();
            let path = g.label_path(ix);
            prop_assert_eq!(path.last().map(|p| p.0), Some(ix));
            let (origin, none) = path[0];
            prop_assert!(none.is_none());
            // Walking the path from the origin's own label gives the node's label.
            let mut carried = g.node(origin).label.as_ref().map(|l| l.rank);
            prop_assert_eq!(carried, g.effective(origin));
            for pair in path.windows(2) {
                let edge = pair[1].1.unwrap();
                prop_assert_eq!(g.endpoints(edge), (pair[0].0, pair[1].0));
                carried = g.edge(edge).flow.carry(carried);
            }
            prop_assert_eq!(carried, g.effective(ix));
        }
    }
}

proptest! {
    /// An import merged into a live graph (labels raised, lowered or restated,
    /// edges added) leaves the labels a rebuild gives, and paths that prove them.
    #[test]
    fn a_merged_import_matches_a_rebuild(
        spec in spec(20),
        relabel in proptest::collection::vec((0usize..20, 0u8..5), 0..6),
        extra in proptest::collection::vec((0usize..20, 0usize..20), 0..6),
    ) {
        let n = spec.labels.len();
        let mut g = build(&spec);
        let mut grown = spec.clone();
        let mut import = tollgate_lineage::Import { origin: Origin::Openlineage, nodes: vec![], edges: vec![] };
        for (i, rank) in relabel {
            let i = i % n;
            import.nodes.push(node(i, Some(rank)));
            grown.labels[i] = Some(rank);
        }
        for (k, (a, b)) in extra.into_iter().enumerate() {
            let (a, b) = (a % n, b % n);
            import.edges.push((key(a), key(b), Edge::new(format!("m{k}"), Origin::Openlineage)));
            grown.edges.push((a, b, Flow::Open));
        }
        g.merge(&import);
        prop_assert_eq!(effective(&g, n), naive(&grown));
        for i in 0..n {
            let ix = g.find(&key(i)).unwrap();
            let path = g.label_path(ix);
            let mut carried = g.node(path[0].0).label.as_ref().map(|l| l.rank);
            for pair in path.windows(2) {
                carried = g.edge(pair[1].1.unwrap()).flow.carry(carried);
            }
            prop_assert_eq!(carried, g.effective(ix));
        }
    }
}

#[test]
fn a_hand_set_label_equal_to_its_inflow_explains_the_node() {
    // A (Highly Confidential) -> M; then M is labelled Highly Confidential by
    // hand: its label is its own now, as a full pass would say.
    let spec = Spec {
        labels: vec![Some(4), None],
        edges: vec![(0, 1, Flow::Open)],
    };
    let mut g = build(&spec);
    let m = g.find(&key(1)).unwrap();
    assert_eq!(g.label_path(m).len(), 2);
    g.upsert_node(node(1, Some(4)));
    assert_eq!(g.label_path(m), vec![(m, None)]);
}

#[test]
fn a_cap_lowers_what_passes_and_a_block_stops_it() {
    let spec = Spec {
        labels: vec![Some(4), None, None, None],
        edges: vec![
            (0, 1, Flow::Cap(Rank(2))),
            (0, 2, Flow::Blocked),
            (1, 3, Flow::Open),
        ],
    };
    let g = build(&spec);
    assert_eq!(
        effective(&g, 4),
        vec![Some(Rank(4)), Some(Rank(2)), None, Some(Rank(2))]
    );
    let path: Vec<NodeIndex> = g
        .label_path(g.find(&key(3)).unwrap())
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(path, [0, 1, 3].map(|i| g.find(&key(i)).unwrap()).to_vec());
}
