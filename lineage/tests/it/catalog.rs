//! The generator's catalog, loaded and asked the analysts' questions.

use tollgate_fixtures::{Estate, catalog_yaml};
use tollgate_lineage::{
    Bounds, Direction, FindingKind, LineageGraph, NodeKind, Policy, Taxonomy, parse_catalog,
};

fn estate_graph() -> LineageGraph {
    let taxonomy = Taxonomy::default();
    let import = parse_catalog(&catalog_yaml(&Estate::new(42)), "catalog.yaml", &taxonomy).unwrap();
    LineageGraph::build(taxonomy, import.nodes, import.edges).unwrap()
}

#[test]
fn agents_reaching_highly_confidential_data_come_with_their_proof() {
    let g = estate_graph();
    let top = g.taxonomy().top();
    let agents = g.at_or_above(top, &[NodeKind::Agent]);
    assert!(!agents.is_empty());
    for agent in &agents {
        let path = g.label_path(*agent);
        let origin = g.node(path[0].0);
        assert_eq!(origin.kind, NodeKind::DataSource, "{path:?}");
        assert_eq!(origin.label.as_ref().unwrap().rank, top);
        assert!(path.len() >= 3, "source -> tool -> agent");
    }
    // The read-only SQL tool's masking view caps what reaches through it.
    let sql = g.resolve(Some("contoso"), "sql.query_readonly").unwrap();
    assert_eq!(g.label_name(g.effective(sql)), Some("General"));
}

#[test]
fn the_estate_has_the_findings_its_catalog_was_written_to_have() {
    let g = estate_graph();
    let findings = g.findings(&Policy::default());
    let of = |kind| findings.iter().filter(move |f| f.kind == kind);
    // Marketing is cleared for General only.
    assert!(
        of(FindingKind::AboveClearance).all(|f| f.node.name == "marketing-writer"),
        "{findings:#?}"
    );
    // Global pay-as-you-go deployments allow General at most and receive more.
    assert!(of(FindingKind::AboveAllowedLabel).count() > 0);
    for f in of(FindingKind::AboveAllowedLabel) {
        assert_eq!(f.node.kind, NodeKind::ModelDeployment);
        assert!(f.path.len() >= 4, "source -> tool -> agent -> deployment");
    }
}

#[test]
fn blast_radius_and_provenance_are_bounded_and_ordered_by_distance() {
    let g = estate_graph();
    let source = g.resolve(None, "hr-employee-db").unwrap();
    let all = Bounds {
        depth: 10,
        kinds: vec![],
        limit: 10_000,
    };
    let down = g.reach(source, Direction::Downstream, &all);
    assert!(!down.truncated);
    assert!(down.nodes.windows(2).all(|w| w[0].1 <= w[1].1));
    assert!(
        down.nodes
            .iter()
            .any(|(n, _)| g.node(*n).kind == NodeKind::Gateway)
    );
    let shallow = g.reach(
        source,
        Direction::Downstream,
        &Bounds {
            depth: 1,
            ..all.clone()
        },
    );
    assert!(shallow.truncated && shallow.nodes.iter().all(|(_, d)| *d == 1));
    let agents_only = g.reach(
        source,
        Direction::Downstream,
        &Bounds {
            kinds: vec![NodeKind::Agent],
            ..all.clone()
        },
    );
    assert!(
        agents_only
            .nodes
            .iter()
            .all(|(n, d)| g.node(*n).kind == NodeKind::Agent && *d == 2)
    );
    let capped = g.reach(
        source,
        Direction::Downstream,
        &Bounds {
            limit: 2,
            ..all.clone()
        },
    );
    assert_eq!(capped.nodes.len(), 2);
    assert!(capped.truncated);

    let gateway = g.resolve(None, "apim-contoso").unwrap();
    let up = g.reach(gateway, Direction::Upstream, &all);
    assert!(up.nodes.iter().any(|(n, _)| *n == source));
    let path = g.path_between(source, gateway, 10).unwrap();
    assert_eq!(path.first().unwrap().0, source);
    assert_eq!(path.last().unwrap().0, gateway);
    assert!(g.path_between(gateway, source, 10).is_none());
}

#[test]
fn a_name_in_two_namespaces_asks_for_the_namespace() {
    use tollgate_lineage::{Node, NodeKey};
    let node = |ns: &str| Node::new(NodeKey::new(ns, "orders"), NodeKind::DataSource);
    let g = LineageGraph::build(Taxonomy::default(), [node("erp"), node("crm")], []).unwrap();
    let err = g.resolve(None, "orders").unwrap_err().to_string();
    assert!(err.contains("crm, erp"), "{err}");
    assert!(g.resolve(Some("crm"), "orders").is_ok());
    assert!(g.resolve(None, "nothing").is_err());
}
