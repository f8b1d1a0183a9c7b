//! Imports and answers shaped to exhaust the server: a job with as many inputs
//! as one event may name, writing as many outputs; a long cycle whose proof
//! paths go all the way round.

use tollgate_lineage::{
    ANSWER_PATH_STEPS, Edge, Import, Label, LineageGraph, Node, NodeKey, NodeKind, Origin, Rank,
    Taxonomy, parse_events,
};

fn key(i: usize) -> NodeKey {
    NodeKey::new("t", format!("n{i}"))
}

/// One job reading `n` datasets and writing `n` more, merged into a graph that
/// already holds some of those edges. Linear: 2 x 50,000 edges took minutes
/// when each edge searched the job's edges and raised the job again.
#[test]
fn merging_a_wide_job_is_linear_and_labels_it_once() {
    let n = 50_000;
    let taxonomy = Taxonomy::default();
    let job = NodeKey::new("t", "job");
    let mut import = Import {
        origin: Origin::Openlineage,
        nodes: vec![Node::new(job.clone(), NodeKind::Agent)],
        edges: Vec::new(),
    };
    for i in 0..n {
        let mut source = Node::new(key(i), NodeKind::DataSource);
        if i == n - 1 {
            source.label = Some(Label {
                name: "Highly Confidential".into(),
                rank: taxonomy.top(),
            });
        }
        import.nodes.push(source);
        import
            .nodes
            .push(Node::new(key(n + i), NodeKind::DataSource));
        import
            .edges
            .push((key(i), job.clone(), Edge::new("reads", Origin::Openlineage)));
        let mut writes = Edge::new("writes", Origin::Openlineage);
        writes.calls = 1;
        import.edges.push((job.clone(), key(n + i), writes));
    }
    let mut graph = LineageGraph::new(taxonomy.clone());
    let started = std::time::Instant::now();
    graph.merge(&import);
    // Again: every edge exists now and adds its calls.
    graph.merge(&import);
    // A sanity bound far above linear time in a debug build, far below the
    // quadratic one (not a performance target: bench/lineage.sh measures).
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    assert_eq!(graph.edge_count(), 2 * n);
    let job = graph.find(&job).unwrap();
    assert_eq!(graph.effective(job), Some(taxonomy.top()));
    let out = graph.find(&key(2 * n - 1)).unwrap();
    assert_eq!(graph.effective(out), Some(taxonomy.top()));
    let calls: u64 = graph
        .edges_of(job, true)
        .map(|(e, _)| graph.edge(e).calls)
        .sum();
    assert_eq!(calls, 2 * n as u64);
}

#[test]
fn one_event_naming_too_many_datasets_is_refused_by_name() {
    let inputs: Vec<_> = (0..10_001)
        .map(|i| serde_json::json!({"namespace": "t", "name": format!("d{i}")}))
        .collect();
    let event = serde_json::json!({"eventTime": "2026-10-14T10:00:00Z", "producer": "p", "schemaURL": "s",
        "job": {"namespace": "t", "name": "job"}, "inputs": inputs});
    let err = parse_events(&[event], "body", &Taxonomy::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("names 10001 input and output datasets, more than the 10000"),
        "{err}"
    );
    // Many bad events: the first problems, then a count.
    let bad: Vec<_> = (0..500).map(|_| serde_json::json!([1])).collect();
    let err = parse_events(&bad, "body", &Taxonomy::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("... and 400 more problems"), "{err}");
}

#[test]
fn proof_paths_round_a_long_cycle_are_bounded_and_say_what_they_leave_out() {
    let taxonomy = Taxonomy::default();
    let n = 2000;
    let nodes = (0..n).map(|i| {
        let mut node = Node::new(key(i), NodeKind::Agent);
        if i == 0 {
            node.label = Some(Label {
                name: "Highly Confidential".into(),
                rank: Rank(4),
            });
        }
        node
    });
    let edges = (0..n).map(|i| {
        (
            key(i),
            key((i + 1) % n),
            Edge::new("calls", Origin::Catalog),
        )
    });
    let graph = LineageGraph::build(taxonomy, nodes, edges).unwrap();
    let far = graph.find(&key(n - 1)).unwrap();
    let explained = graph.explain(far);
    assert_eq!(explained.path.len(), ANSWER_PATH_STEPS);
    let omitted = explained.omitted.unwrap();
    assert_eq!(omitted.steps, n - ANSWER_PATH_STEPS);
    assert_eq!(omitted.why, "/api/v1/lineage/why?namespace=t&name=n1999");
    assert_eq!(explained.path[0].node.name, "n0");
    assert_eq!(explained.path.last().unwrap().node.name, "n1999");
    let text = tollgate_lineage::path_text_with(&explained.path, Some(&omitted));
    assert!(text.contains(" ... 1980 more steps ..."), "{text}");
    let whole = graph.explain_whole(far);
    assert_eq!((whole.path.len(), whole.omitted), (n, None));
}
