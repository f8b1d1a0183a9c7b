//! The graph survives the state database, on both backends.

use tollgate_fixtures::{Estate, catalog_yaml};
use tollgate_lineage::{
    Edge, Import, Label, LineageGraph, LineageMode, Node, NodeKey, NodeKind, Origin, Taxonomy,
    load_graph, parse_catalog, save_import,
};
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(a_catalog_is_stored_reloaded_and_replaced_whole);

fn labels(g: &LineageGraph) -> Vec<(NodeKey, Option<String>)> {
    let mut out: Vec<_> = g
        .nodes()
        .map(|ix| {
            (
                g.node(ix).key.clone(),
                g.label_name(g.effective(ix)).map(str::to_string),
            )
        })
        .collect();
    out.sort();
    out
}

async fn a_catalog_is_stored_reloaded_and_replaced_whole(store: TestStore) {
    let taxonomy = Taxonomy::default();
    let yaml = catalog_yaml(&Estate::new(42));
    let import = parse_catalog(&yaml, "catalog.yaml", &taxonomy).unwrap();
    let applied = save_import(
        &store.db,
        &import,
        &taxonomy,
        "cli:test",
        LineageMode::Replace,
    )
    .await
    .unwrap();
    assert_eq!(applied.edges, import.edges.len());

    let in_memory =
        LineageGraph::build(taxonomy.clone(), import.nodes.clone(), import.edges.clone()).unwrap();
    let loaded = load_graph(&store.db, taxonomy.clone()).await.unwrap();
    assert_eq!(loaded.node_count(), in_memory.node_count());
    assert_eq!(loaded.edge_count(), in_memory.edge_count());
    assert_eq!(labels(&loaded), labels(&in_memory));

    // An edge another importer saw survives a catalog re-import that drops one
    // of the catalog's own edges.
    // It may also name a known node, as a bare process with a label: the node
    // keeps its kind and catalog attributes and takes the label, in the store
    // and in a live graph merged incrementally alike.
    let (from, to, _) = import.edges[0].clone();
    let mut tagged = Node::new(to.clone(), NodeKind::Process);
    tagged.label = Some(Label {
        name: "Confidential\\Finance".into(),
        rank: taxonomy.rank("Confidential").unwrap(),
    });
    let seen = Import {
        origin: Origin::Openlineage,
        nodes: vec![tagged],
        edges: vec![(
            from.clone(),
            to.clone(),
            Edge::new("reads", Origin::Openlineage),
        )],
    };
    let mut live = load_graph(&store.db, taxonomy.clone()).await.unwrap();
    let kind_before = live.node(live.find(&to).unwrap()).kind;
    live.merge(&seen);
    let applied = save_import(&store.db, &seen, &taxonomy, "key:1:ol", LineageMode::Merge)
        .await
        .unwrap();
    assert_eq!(applied.edges_removed, 0);
    let reloaded = load_graph(&store.db, taxonomy.clone()).await.unwrap();
    assert_eq!(labels(&reloaded), labels(&live));
    assert_eq!(reloaded.edge_count(), live.edge_count());
    let node = reloaded.node(reloaded.find(&to).unwrap());
    assert_eq!(node.kind, kind_before);
    assert_eq!(node.label.as_ref().unwrap().name, "Confidential\\Finance");
    let mut fewer = import.clone();
    fewer.edges.remove(0);
    let applied = save_import(
        &store.db,
        &fewer,
        &taxonomy,
        "cli:test",
        LineageMode::Replace,
    )
    .await
    .unwrap();
    assert_eq!(applied.edges_removed, 1);
    let g = load_graph(&store.db, taxonomy.clone()).await.unwrap();
    assert_eq!(g.edge_count(), import.edges.len());
    let (a, b) = (g.find(&from).unwrap(), g.find(&to).unwrap());
    let origins: Vec<Origin> = g
        .edges_of(a, true)
        .filter(|(_, n)| *n == b)
        .map(|(e, _)| g.edge(e).origin)
        .collect();
    assert_eq!(origins, [Origin::Openlineage]);
    assert_eq!(g.node(a).kind, NodeKind::DataSource);

    let audit = store.db.audit_log(None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .filter(|e| e.action == "lineage.import")
            .count()
            == 3,
        "{audit:#?}"
    );
}
